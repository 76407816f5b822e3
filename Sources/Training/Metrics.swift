import Foundation
import Models
import SafeTensors
import Tensors

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

/// The process's peak resident memory so far, in bytes.
///
/// On Linux this is the address space's high-water mark (`VmHWM` in /proc/self/status), not
/// getrusage's `ru_maxrss`: the kernel carries `ru_maxrss` across `execve`, so a process started by
/// a bigger one (each `grpo train` that `grpo compare` runs after the demo's SFT) would report its
/// parent's peak. getrusage is the fallback.
public func peakResidentBytes() -> Int {
    #if os(Linux)
        if let bytes = statusBytes("VmHWM") { return bytes }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    #else
        var usage = rusage()
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss
    #endif
}

/// The process's resident memory now, in bytes (/proc/self/statm on Linux; 0 elsewhere).
public func residentBytes() -> Int {
    #if os(Linux)
        guard
            let pages = procFile("/proc/self/statm")?.split(separator: " ").dropFirst().first.flatMap({
                Int($0)
            })
        else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    #else
        return 0
    #endif
}

/// The resident bytes of mapped files (`RssFile` in /proc/self/status: the program's and its
/// libraries' code and data as they are paged in), or 0 where it cannot be read.
public func fileResidentBytes() -> Int {
    #if os(Linux)
        return statusBytes("RssFile") ?? 0
    #else
        return 0
    #endif
}

/// A `NAME:   N kB` field of /proc/self/status, in bytes.
private func statusBytes(_ name: String) -> Int? {
    guard let text = procFile("/proc/self/status"),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
        let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { return nil }
    return kib * 1024
}

/// The text of a procfs file, nil if it cannot be opened.
///
/// procfs files report size 0, so they are read as a stream rather than by their size.
private func procFile(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}

/// What the process held when a trainer started, which `memory/process` (its resident bytes then)
/// already counts: the later figures of the primitives, the allocator's free bytes and the mapped
/// files count only their growth since.
struct MemoryBaseline {
    let process = residentBytes()
    let primitives = matmulPrimitiveBytes()
    let allocatorFree = heapStatistics().free
    let files = fileResidentBytes()

    /// Sets `account`'s process figure and takes this baseline out of the figures that include it.
    func apply(to account: inout MemoryAccount) {
        account.process = process
        account.primitives = max(0, account.primitives - primitives)
        account.allocatorFree = max(0, account.allocatorFree - allocatorFree)
        account.files = max(0, fileResidentBytes() - files)
    }
}

/// What a training step holds, by category, in bytes: the `memory/...` metrics.
///
/// Each figure is read from the objects that hold the memory (weights as loaded, converted or
/// released; gradient and AdamW buffers; the activation buffers every model holds; the largest
/// KV-cache wave; the logits chunk; oneDNN's kept matmul primitives; the process before the trainer
/// loaded anything), not estimated; `memory/accounted` is their sum and `memory/peak_rss` what the
/// process measured (`peakResidentBytes`), which also holds the tokenizer, the datasets and the
/// allocator's slack.
struct MemoryAccount {
    var policyWeights = 0
    /// Parameters that train (the adapters with LoRA): gradients and two AdamW moments each.
    var trainable = 0
    /// The frozen reference model's weights (0 with LoRA, whose reference is the base).
    var reference = 0
    /// PPO's critic: weights, gradients and AdamW moments.
    var critic = 0
    var activations = 0
    /// What a backward allocates while it runs (the largest of the trained models'), and the
    /// buffers bf16 training attention keeps for its batched products.
    var backward = 0
    var kvCache: Int?
    /// The lm_head's logits chunk (rows x vocabulary, float32).
    var logits = 0
    /// What the process held before the trainer loaded anything: code, the Swift runtime, oneDNN.
    var process = 0
    /// oneDNN's matmul primitives (their JIT kernels), as measured when each was made.
    var primitives = matmulPrimitiveBytes()
    /// Freed memory the C allocator keeps for reuse (glibc's mallinfo2 `fordblks`, every arena):
    /// resident once written, and counted in the peak, but in none of the objects above.
    var allocatorFree = heapStatistics().free
    /// Code and data of the program and its libraries paged in since `process` was measured.
    var files = 0

    var metrics: [String: Double] {
        var metrics: [String: Double] = [
            "memory/peak_rss": Double(peakResidentBytes()), "memory/policy_weights": Double(policyWeights),
            "memory/gradients": Double(trainable * 4), "memory/optimizer": Double(2 * trainable * 4),
            "memory/activations": Double(activations), "memory/logits": Double(logits),
            "memory/backward": Double(backward),
        ]
        if reference > 0 { metrics["memory/reference"] = Double(reference) }
        if critic > 0 { metrics["memory/critic"] = Double(critic) }
        if let kvCache { metrics["memory/kv_cache"] = Double(kvCache) }
        if process > 0 { metrics["memory/process"] = Double(process) }
        if primitives > 0 { metrics["memory/matmul_primitives"] = Double(primitives) }
        if allocatorFree > 0 { metrics["memory/allocator_free"] = Double(allocatorFree) }
        if files > 0 { metrics["memory/files"] = Double(files) }
        let held = policyWeights + 12 * trainable + reference + critic + activations + backward
        metrics["memory/accounted"] = Double(
            process + held + (kvCache ?? 0) + logits + primitives + allocatorFree + files)
        return metrics
    }

    /// The account of `model` training with what it kept this step.
    init(model: Transformer, activations: Int, kvCache: Int?) {
        policyWeights = model.weightBytes
        trainable = model.trainableParameters.count
        self.activations = activations
        self.kvCache = kvCache
        backward = model.backwardScratchBytes + (model.precision == .bf16 ? attentionScratchBytes() : 0)
        logits = logitScratchBytes
    }
}
