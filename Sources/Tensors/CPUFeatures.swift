import Foundation

/// The vector instructions of the CPU this process runs on, read once from `/proc/cpuinfo` on Linux.
///
/// Results that depend on rounding (the demo's training run, benchmark figures) are reported with the
/// machine class they came from: this project's machines are AVX-512 (with `avx512_bf16`) or
/// AVX2-only, and the two round differently.
public enum CPUFeatures {
    /// The `/proc/cpuinfo` fields of the first CPU (`vendor_id`, `cpu family`, `model`, ...).
    static let fields: [String: String] = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }  // the first processor's block ends at its blank line
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }()

    /// The CPU's flag names (`avx2`, `avx512f`, `avx512_bf16`, ...); empty where unknown (macOS).
    public static let flags: Set<String> = {
        guard let line = fields["flags"] else { return [] }
        return Set(line.split(separator: " ").map(String.init))
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

    /// The core's microarchitecture where the vendor and family tell it, with the family and model
    /// numbers: "AMD Zen 4 (family 25, model 17)"; nil where `/proc/cpuinfo` has no family.
    ///
    /// Both of this project's AVX-512 machine classes report "AMD EPYC" and the same flags, but Zen 4
    /// runs each 512-bit instruction on 256-bit units and Zen 5 (EPYC 9005) on 512-bit ones: float32
    /// and bf16 matmuls peak about twice as high per core and clock on Zen 5, so benchmark figures
    /// name the core they came from.
    public static var microarchitecture: String? {
        guard let family = fields["cpu family"].flatMap({ Int($0) }) else { return nil }
        return microarchitecture(
            vendor: fields["vendor_id"] ?? "unknown vendor", family: family,
            model: fields["model"].flatMap { Int($0) } ?? -1, hasAVX512: hasAVX512)
    }

    /// The name `microarchitecture` gives a vendor, family and model: AMD's Zen generations by
    /// family (25 is Zen 3 without AVX-512 and Zen 4 with it), other vendors by their numbers.
    public static func microarchitecture(vendor: String, family: Int, model: Int, hasAVX512: Bool) -> String {
        let numbers = "family \(family), model \(model)"
        guard vendor == "AuthenticAMD" else { return "\(vendor) (\(numbers))" }
        let name: String
        switch family {
        case 23: name = model >= 0x30 ? "Zen 2" : "Zen"
        case 25: name = hasAVX512 ? "Zen 4" : "Zen 3"
        case 26: name = "Zen 5"
        default: name = "family \(family)"
        }
        return "AMD \(name) (\(numbers))"
    }

    /// One line for reports, such as "2 cores, AVX-512 with avx512_bf16, AMD Zen 4 (family 25, model 17)".
    public static var summary: String {
        "\(coreCount) cores, \(vectorClass)" + (microarchitecture.map { ", \($0)" } ?? "")
    }
}
