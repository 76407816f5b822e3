import Foundation
import SafeTensors

/// `metrics.jsonl`: one JSON object per optimizer step, TRL's metric names.
///
/// On resume, lines after the checkpoint's step are dropped (atomically) before new ones follow, so
/// the file always describes one run.
public final class MetricsLog {
    public let path: String
    private var handle: FileHandle?

    public init(path: String, keepingStepsThrough lastStep: Int) throws {
        self.path = path
        let manager = FileManager.default
        if let data = manager.contents(atPath: path) {
            let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let step = object["step"] as? Int
                else { return false }
                return step <= lastStep
            }
            try atomicWrite(Data(kept.map { $0 + "\n" }.joined().utf8), to: path)
        } else {
            try Data().write(to: URL(fileURLWithPath: path))
        }
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    deinit { try? handle?.close() }

    public func append(_ metrics: [String: Double], step: Int) throws {
        var object: [String: Any] = ["step": step]
        for (key, value) in metrics { object[key] = value.isFinite ? value : nil }
        let data = try JSONSerialization.data(
            withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        try handle?.write(contentsOf: data + Data("\n".utf8))
    }
}

/// Mean and unbiased standard deviation of the present values (NaN when there are none).
func meanAndStd(_ values: [Double?]) -> (mean: Double, std: Double) {
    let present = values.compactMap { $0 }
    guard !present.isEmpty else { return (.nan, .nan) }
    let mean = present.reduce(0, +) / Double(present.count)
    return (mean, present.count > 1 ? standardDeviation(present[...]) : 0)
}

/// The process's peak resident memory so far, in bytes (getrusage's ru_maxrss, KiB on Linux).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    #else
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss
    #endif
}

/// What a step holds, measured (`memory/...` metrics, bytes): the process's peak resident memory,
/// the gradients and AdamW moments of what trains, the activations the largest forward kept for
/// its backward, and (GRPO) the largest KV-cache wave of the step's sampling.
func memoryMetrics(trainable: Int, activations: Int, kvCache: Int?) -> [String: Double] {
    var metrics: [String: Double] = [
        "memory/peak_rss": Double(peakResidentBytes()), "memory/gradients": Double(trainable * 4),
        "memory/optimizer": Double(2 * trainable * 4), "memory/activations": Double(activations),
    ]
    if let kvCache { metrics["memory/kv_cache"] = Double(kvCache) }
    return metrics
}
