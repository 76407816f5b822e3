import Distributed
import Foundation
import Models

/// How a data-parallel step's gradient all-reduce is cut into buckets and overlapped with the
/// backward, as PyTorch's DistributedDataParallel does it (`ddp_bucket_cap_mb`, 25 MiB by default).
///
/// The backward runs from the last decoder layer down, so the gradients become final from the top
/// of the store down: a layer's gradients are complete once its backward is done (in the last
/// forward/backward chunk of the step; earlier chunks only add to them). Each time the complete,
/// unsent layers reach the cap, their span starts its all-reduce while the layers below run; what
/// remains (the lowest layers and the embedding, which a tied lm_head also writes) is sent at the
/// end, and the parameters after the layers (the final norm, an untied lm_head), complete before the
/// first layer's backward, go with the first bucket's call.
///
///     let buckets = GradientBuckets(store: model.trainableParameters, layers: 24, capBytes: 25 << 20)
///     let sum = buckets.begin(communicator)
///     model.afterLayerBackward = sum.layerDone   // on the step's last backward
///     model.backward(dLogp: ...)
///     sum.finish()                               // every gradient summed over the ranks
struct GradientBuckets {
    /// Each decoder layer's span of the store, or nil when the layers' parameters are not laid out
    /// in layer order, each layer's contiguously (then the whole store is summed at the end).
    let layerSpans: [Range<Int>]?
    let count: Int
    let capElements: Int
    let gradients: UnsafeMutablePointer<Float>

    init(store: ParameterStore, layers: Int, capBytes: Int) {
        count = store.count
        capElements = max(1, capBytes / MemoryLayout<Float>.stride)
        gradients = store.gradients.pointer
        var spans: [Range<Int>?] = Array(repeating: nil, count: layers)
        var ordered = true
        for slot in store.slots {
            guard let layer = Self.layerIndex(slot.name), layer < layers else { continue }
            let span = slot.offset..<(slot.offset + slot.count)
            if let previous = spans[layer] {
                // Contiguous within the layer.
                guard previous.upperBound == span.lowerBound else {
                    ordered = false
                    break
                }
                spans[layer] = previous.lowerBound..<span.upperBound
            } else {
                spans[layer] = span
            }
        }
        let found = spans.compactMap { $0 }
        // Layers in order, back to back, every layer present.
        if ordered && found.count == layers && !found.isEmpty
            && zip(found, found.dropFirst()).allSatisfy({ $0.upperBound == $1.lowerBound })
        {
            layerSpans = found
        } else {
            layerSpans = nil
        }
    }

    /// N in a name holding `layers.N.` (`model.layers.3.mlp.up_proj.weight`, PEFT's
    /// `base_model.model.model.layers.3....lora_A.weight`).
    static func layerIndex(_ name: String) -> Int? {
        guard let range = name.range(of: "layers.") else { return nil }
        let digits = name[range.upperBound...].prefix(while: \.isNumber)
        guard !digits.isEmpty, name[range.upperBound...].dropFirst(digits.count).first == "." else {
            return nil
        }
        return Int(digits)
    }

    /// The bucket boundaries one step sends, in order, when every layer reports (for tests): what
    /// `begin` starts as the backward goes.
    func plannedBuckets() -> [Range<Int>] {
        let sum = InFlightGradientSum(self, communicator: nil)
        if let layerSpans {
            for layer in layerSpans.indices.reversed() { sum.layerDone(layer) }
        }
        sum.finish()
        return sum.started
    }

    /// One step's sum over `communicator`'s ranks.
    func begin(_ communicator: Communicator) -> InFlightGradientSum {
        InFlightGradientSum(self, communicator: communicator)
    }
}

/// One step's bucketed all-reduce (`GradientBuckets`), fed by the backward's layers.
final class InFlightGradientSum {
    private let buckets: GradientBuckets
    private let communicator: Communicator?
    /// The complete layer gradients not yet sent lie in `lowest..<unsent`.
    private var unsent: Int
    private var lowest: Int
    private var tailSent = false
    /// The spans started so far, in order.
    private(set) var started: [Range<Int>] = []

    fileprivate init(_ buckets: GradientBuckets, communicator: Communicator?) {
        self.buckets = buckets
        self.communicator = communicator
        unsent = buckets.layerSpans?.last?.upperBound ?? buckets.count
        lowest = unsent
    }

    /// Layer `layer`'s backward is done (the layers come from the last down).
    func layerDone(_ layer: Int) {
        guard let spans = buckets.layerSpans else { return }
        precondition(spans[layer].upperBound == lowest, "layer \(layer) reported out of order")
        sendTail()
        lowest = spans[layer].lowerBound
        if unsent - lowest >= buckets.capElements {
            start(lowest..<unsent)
            unsent = lowest
        }
    }

    /// Starts what is left (the backward is done), without waiting.
    func sendRest() {
        sendTail()
        start(0..<unsent)
        unsent = 0
    }

    /// The parameters after the layers (complete before the first layer's backward), once.
    private func sendTail() {
        guard !tailSent else { return }
        tailSent = true
        start((buckets.layerSpans?.last?.upperBound ?? buckets.count)..<buckets.count)
    }

    /// Starts what is left and waits until every bucket is summed.
    func finish() {
        sendRest()
        communicator?.waitForSums()
    }

    private func start(_ span: Range<Int>) {
        guard !span.isEmpty else { return }
        started.append(span)
        communicator?.startSum(
            UnsafeMutableBufferPointer(start: buckets.gradients + span.lowerBound, count: span.count))
    }
}

/// `chunks` with the one of most `tokens` moved to the end (the others in order): the backward
/// the all-reduce overlaps is the step's last, so it should be the longest.
func longestLast(_ chunks: [Range<Int>], tokens: (Range<Int>) -> Int) -> [Range<Int>] {
    guard chunks.count > 1, let longest = chunks.indices.max(by: { tokens(chunks[$0]) < tokens(chunks[$1]) })
    else { return chunks }
    var ordered = chunks
    ordered.append(ordered.remove(at: longest))
    return ordered
}
