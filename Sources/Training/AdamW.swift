import Models
import Tensors

/// AdamW's hyper-parameters, TRL/transformers' names and defaults.
public struct AdamWSettings: Sendable, Equatable {
    public var learningRate: Double = 1e-6
    public var adamBeta1: Double = 0.9
    public var adamBeta2: Double = 0.999
    public var adamEpsilon: Double = 1e-8
    public var weightDecay: Double = 0

    public init() {}
}

/// AdamW over a model's flat parameter buffer, with its moments in the same layout.
///
/// Weight decay skips biases and norm weights (every one-dimensional tensor), as Hugging Face's
/// Trainer does.
///
///     let optimizer = AdamW(parameters: model.parameters, settings: settings)
///     let norm = clipGradientNorm(model.parameters, maxNorm: 1)
///     optimizer.step(learningRate: 1e-6)
public final class AdamW {
    public let parameters: ParameterStore
    public let settings: AdamWSettings
    /// First and second moments: (P) each.
    public let m: Tensor
    public let v: Tensor
    /// Optimizer steps taken so far.
    public internal(set) var steps = 0
    private let decayRanges: [Range<Int>]

    public init(parameters: ParameterStore, settings: AdamWSettings) {
        self.parameters = parameters
        self.settings = settings
        m = Tensor(zeros: [parameters.count])
        v = Tensor(zeros: [parameters.count])
        decayRanges = parameters.slots.filter { $0.shape.count >= 2 }.map {
            $0.offset..<($0.offset + $0.count)
        }
    }

    /// Applies the accumulated gradients at `learningRate`.
    public func step(learningRate: Double) {
        steps += 1
        adamWStep(
            values: Tensor(storage: parameters.values, offset: 0, shape: [parameters.count]),
            gradients: Tensor(storage: parameters.gradients, offset: 0, shape: [parameters.count]),
            m: m, v: v, decayRanges: decayRanges, step: steps, learningRate: Float(learningRate),
            beta1: Float(settings.adamBeta1), beta2: Float(settings.adamBeta2),
            epsilon: Float(settings.adamEpsilon), weightDecay: Float(settings.weightDecay))
        parameters.valuesChanged()
    }
}

/// Scales the gradients so that their global L2 norm is at most `maxNorm`, as PyTorch's
/// `clip_grad_norm_` (coefficient maxNorm / (norm + 1e-6), capped at 1); returns the norm before.
///
/// A non-finite norm is returned as it is and nothing is scaled: the caller skips the step.
@discardableResult
public func clipGradientNorm(_ parameters: ParameterStore, maxNorm: Double?) -> Double {
    let gradients = Tensor(storage: parameters.gradients, offset: 0, shape: [parameters.count])
    let norm = sumOfSquares(gradients).squareRoot()
    if let maxNorm, norm.isFinite, norm > maxNorm {
        scale(gradients, by: Float(maxNorm / (norm + 1e-6)))
    }
    return norm
}
