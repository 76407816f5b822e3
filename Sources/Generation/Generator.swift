import Foundation
import Models
import Tensors
import Tokenizers

/// Samples `numGenerations` completions per prompt with a KV cache.
///
/// Each prompt is prefilled once and its cache forked for its G completions; then every live
/// sequence advances together, one matmul per layer per step with one row per live sequence, and
/// finished sequences leave the batch. Prompts of any lengths share a batch. Prompt groups run in
/// waves so that their KV caches stay within `maxCacheBytes`.
///
///     let generator = Generator(model: model, tokenizer: tokenizer)
///     let groups = try generator.generate(prompts: [ids], parameters: sampling)  // [prompt][sample]
public final class Generator {
    public let model: Transformer
    public let tokenizer: Tokenizer?
    /// Upper bound on KV-cache bytes held at once.
    public var maxCacheBytes = 4 << 30
    /// Whether NaN or infinite logits (broken or overflowing weights) end generation with an error.
    ///
    /// The error names the model. A trainer turns this off: its NaN log-probs then reach the loss,
    /// and the step is skipped and counted as any non-finite step is.
    public var nonFiniteLogitsAreErrors = true
    /// The most KV-cache bytes resident at once in the last `generate` call: the pages its caches
    /// had written (each cache is mapped on its own, so a page counts once it holds a row).
    public private(set) var peakCacheBytes = 0

    public init(model: Transformer, tokenizer: Tokenizer? = nil) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Bytes of KV cache one sequence of `tokens` tokens holds at most (in whole pages).
    public func cacheBytes(tokens: Int) -> Int {
        let c = model.config
        return KVCache.bytes(
            layers: c.numHiddenLayers, width: c.numKeyValueHeads * c.headDim, tokens: tokens,
            elements: model.cacheElements)
    }

    /// Completions for each prompt, `parameters.numGenerations` each; `onToken` sees every sampled
    /// token as (prompt, sample, token), for streaming.
    public func generate(
        prompts: [[Int32]], parameters: SamplingParameters, onToken: ((Int, Int, Int32) -> Void)? = nil
    ) throws -> [[Completion]] {
        try parameters.validate()
        let config = model.config
        for (index, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw GenerationError.emptyPrompt(index: index) }
            if prompt.count + parameters.maxNewTokens > config.maxPositionEmbeddings {
                throw GenerationError.promptTooLong(
                    index: index, tokens: prompt.count, maxNewTokens: parameters.maxNewTokens,
                    context: config.maxPositionEmbeddings)
            }
            if let bad = prompt.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
                throw GenerationError.tokenOutOfRange(index: index, id: bad, vocabSize: config.vocabSize)
            }
        }
        let G = parameters.numGenerations
        let groupBytes = prompts.map { cacheBytes(tokens: $0.count + parameters.maxNewTokens) * (G + 1) }
        if let largest = groupBytes.max(), largest > maxCacheBytes {
            throw GenerationError.cacheBudgetTooSmall(needed: largest, budget: maxCacheBytes)
        }
        var results = [[Completion]](repeating: [], count: prompts.count)
        peakCacheBytes = 0
        var start = 0
        while start < prompts.count {
            var end = start
            var bytes = 0
            while end < prompts.count && bytes + groupBytes[end] <= maxCacheBytes {
                bytes += groupBytes[end]
                end += 1
            }
            let wave = try generateWave(Array(start..<end), prompts, parameters, onToken)
            for (offset, completions) in wave.enumerated() { results[start + offset] = completions }
            start = end
        }
        return results
    }

    /// A sequence being generated.
    private struct Live {
        let prompt: Int
        let sample: Int
        var rng: SplitMix64
        let cache: KVCache
        var completion = Completion(tokens: [], logprobs: [], finishReason: .length, text: nil)
        var finished = false
        /// Set when this sequence's logits row held NaN or infinity (broken or overflowing weights).
        var brokenLogits = false
    }

    private func generateWave(
        _ indices: [Int], _ prompts: [[Int32]], _ parameters: SamplingParameters,
        _ onToken: ((Int, Int, Int32) -> Void)?
    ) throws -> [[Completion]] {
        let G = parameters.numGenerations
        let V = model.config.vocabSize
        let wavePrompts = indices.map { prompts[$0] }
        var live: [Live] = []
        // rows: one row of V logits per live sequence, (B, V), in the order of `live`.
        var rows: [Float] = []
        // The KV pages resident at once: each prompt's cache beside its forks, then the live
        // sequences' caches as they grow (a finished sequence's cache is dropped at once).
        var resident = 0
        do {
            let (logits, caches) = model.prefill(
                wavePrompts, capacity: wavePrompts.map { $0.count + parameters.maxNewTokens })
            for (w, prompt) in indices.enumerated() {
                for (g, cache) in caches[w].fork(count: G).enumerated() {
                    live.append(
                        Live(
                            prompt: prompt, sample: g,
                            rng: completionStream(
                                seed: parameters.seed, prompt: parameters.firstPromptIndex + prompt, sample: g
                            ),
                            cache: cache)
                    )
                }
            }
            resident =
                caches.reduce(0) { $0 + $1.residentBytes } + live.reduce(0) { $0 + $1.cache.residentBytes }
            let first = logits.toArray()
            rows.reserveCapacity(live.count * V)
            for sequence in live {
                let w = indices.firstIndex(of: sequence.prompt)!
                rows += first[(w * V)..<((w + 1) * V)]
            }
        }
        peakCacheBytes = max(peakCacheBytes, resident)
        var done: [(prompt: Int, sample: Int, completion: Completion)] = []
        while !live.isEmpty {
            sampleAll(rows, &live, prompts, parameters)
            if nonFiniteLogitsAreErrors && live.contains(where: \.brokenLogits) {
                throw GenerationError.nonFiniteLogits(model: model.sourceFolder ?? "the model")
            }
            for i in live.indices {
                let token = live[i].completion.tokens.last!
                onToken?(live[i].prompt, live[i].sample, token)
                finishIfDone(&live[i], token: token, parameters: parameters)
            }
            done += live.filter(\.finished).map { ($0.prompt, $0.sample, $0.completion) }
            let keep = live.indices.filter { !live[$0].finished }
            live = keep.map { live[$0] }
            if live.isEmpty { break }
            let stepLogits = model.decodeStep(
                tokens: live.map { $0.completion.tokens.last! }, caches: live.map(\.cache))
            rows = stepLogits.toArray()
            peakCacheBytes = max(peakCacheBytes, live.reduce(0) { $0 + $1.cache.residentBytes })
        }
        var grouped = [[Completion]](repeating: [], count: indices.count)
        for w in indices.indices {
            grouped[w] = done.filter { $0.prompt == indices[w] }.sorted { $0.sample < $1.sample }.map(
                \.completion)
        }
        return grouped
    }

    /// Samples the next token of every live sequence from its row of `rows`, (B, V), on all cores.
    ///
    /// Each sequence draws from its own random stream, so the tokens do not depend on how the rows
    /// are split between threads.
    private func sampleAll(
        _ rows: [Float], _ live: inout [Live], _ prompts: [[Int32]], _ p: SamplingParameters
    ) {
        let V = model.config.vocabSize
        live.withUnsafeMutableBufferPointer { sequences in
            parallelFor(sequences.count, minimumPerTask: max(1, 32_768 / V)) { range in
                // Only a repetition penalty needs a copy of the logits to change.
                var scratch = [Float](repeating: 0, count: p.repetitionPenalty != 1 ? V : 0)
                for i in range {
                    let prompt = prompts[sequences[i].prompt]
                    sample(rows[(i * V)..<((i + 1) * V)], &sequences[i], prompt, p, &scratch)
                }
            }
        }
    }

    /// Picks the next token of one sequence from its logits row and records it with its log-prob.
    ///
    /// `scratch` (V floats) holds the logits after a repetition penalty; without one, the row is read
    /// in place.
    private func sample(
        _ row: ArraySlice<Float>, _ sequence: inout Live, _ prompt: [Int32], _ p: SamplingParameters,
        _ scratch: inout [Float]
    ) {
        let logprobTemperature = p.temperature > 0 ? p.temperature : 1
        var logits = row
        if p.repetitionPenalty != 1 {
            scratch.replaceSubrange(scratch.indices, with: row)
            applyRepetitionPenalty(
                &scratch, previous: prompt + sequence.completion.tokens, penalty: p.repetitionPenalty)
            logits = scratch[...]
        }
        let token: Int32
        // log Σ exp(row / T) of the unadjusted row, when the draw already computed it.
        var rowLogSumExp: Float?
        let plain = p.temperature > 0 && p.topK == 0 && p.topP == 1 && p.minP == 0
        if !plain {
            // Filters sort and normalise the row: NaN must not reach them.
            let total = logSumExp(row, temperature: logprobTemperature)
            guard total.isFinite else {
                sequence.brokenLogits = true
                sequence.completion.tokens.append(0)
                sequence.completion.logprobs.append(.nan)
                return
            }
            rowLogSumExp = total
        }
        if p.temperature == 0 {
            token = argmax(logits)
        } else if plain {
            // Plain sampling: no probabilities written, the draw stops where the CDF passes u.
            let drawn = logits.withUnsafeBufferPointer {
                drawFromSoftmax(
                    $0.baseAddress!, count: $0.count, temperature: p.temperature,
                    uniform: sequence.rng.nextUniform())
            }
            token = drawn.token
            if p.repetitionPenalty == 1 { rowLogSumExp = drawn.logSumExp }
        } else {
            let distribution = samplingDistribution(
                logits: Array(logits), temperature: p.temperature, topK: p.topK, topP: p.topP, minP: p.minP)
            token = draw(distribution, uniform: sequence.rng.nextUniform())
        }
        sequence.completion.tokens.append(token)
        let logSumExp = rowLogSumExp ?? logSumExp(row, temperature: logprobTemperature)
        let logprob = row[row.startIndex + Int(token)] / logprobTemperature - logSumExp
        if !logprob.isFinite { sequence.brokenLogits = true }
        sequence.completion.logprobs.append(logprob)
    }

    private func finishIfDone(_ sequence: inout Live, token: Int32, parameters: SamplingParameters) {
        if parameters.stopTokenIDs.contains(token) {
            sequence.completion.finishReason = .stop
            sequence.finished = true
        } else if !parameters.stopStrings.isEmpty, let tokenizer {
            let text = tokenizer.decode(sequence.completion.tokens)
            if let stop = parameters.stopStrings.compactMap({ text.range(of: $0) }).min(by: {
                $0.lowerBound < $1.lowerBound
            }) {
                sequence.completion.finishReason = .stop
                sequence.completion.text = String(text[..<stop.lowerBound])
                sequence.finished = true
                return
            }
        }
        if !sequence.finished && sequence.completion.tokens.count >= parameters.maxNewTokens {
            sequence.completion.finishReason = .length
            sequence.finished = true
        }
        if sequence.finished && sequence.completion.text == nil, let tokenizer {
            sequence.completion.text = tokenizer.decode(sequence.completion.tokens, skipSpecialTokens: true)
        }
    }
}

/// The ids that end a completion for a model folder: config.json's and generation_config.json's
/// `eos_token_id`s and tokenizer_config.json's `eos_token`.
public func stopTokenIDs(model: Transformer, tokenizer: Tokenizer, config: TokenizerConfig) -> [Int32] {
    var stops = Set(model.config.eosTokenIDs.map(Int32.init) + config.generationEOSTokenIDs.map(Int32.init))
    if let eos = config.eosToken, let id = tokenizer.tokenID(eos) { stops.insert(id) }
    return stops.sorted()
}
