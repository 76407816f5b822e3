import Foundation

/// The vector instructions of the CPU this process runs on, read once from `/proc/cpuinfo` on Linux.
///
/// Results that depend on rounding (the demo's training run, benchmark figures) are reported with the
/// machine class they came from: this project's machines are AVX-512 (with `avx512_bf16`) or
/// AVX2-only, and the two round differently.
public enum CPUFeatures {
    /// The CPU's flag names (`avx2`, `avx512f`, `avx512_bf16`, ...); empty where unknown (macOS).
    public static let flags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }()

    public static var hasAVX2: Bool { flags.contains("avx2") }
    public static var hasAVX512: Bool { flags.contains("avx512f") }
    public static var hasAVX512BF16: Bool { flags.contains("avx512_bf16") }

    /// The machine class in a few words: "AVX-512 with avx512_bf16", "AVX-512", "AVX2" or
    /// "no AVX2" (or "unknown" where the flags cannot be read).
    public static var vectorClass: String {
        if flags.isEmpty { return "unknown" }
        if hasAVX512 { return hasAVX512BF16 ? "AVX-512 with avx512_bf16" : "AVX-512" }
        return hasAVX2 ? "AVX2" : "no AVX2"
    }

    /// One line for reports, such as "2 cores, AVX-512 with avx512_bf16".
    public static var summary: String { "\(coreCount) cores, \(vectorClass)" }
}
