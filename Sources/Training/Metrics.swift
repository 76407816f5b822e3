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
