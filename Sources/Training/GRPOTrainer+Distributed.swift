import Distributed
import Foundation
import Models

/// What a GRPO trainer does as one rank of an `mpirun` job (the rest is in the round and step code:
/// each rank's block of the prompts, the batch-wide gathers and sums).
extension GRPOTrainer {
    /// The prompt groups this rank owns in each round: the `localPrompts` starting at
    /// `rank * localPrompts` of the round's global order.
    var localPrompts: Int { config.promptsPerRound / communicator.size }

    /// This rank's block of a whole batch's `round` (a checkpoint's pending round).
    func rankBlock(_ round: Round) -> Round {
        let n = round.sequences.count / communicator.size
        return round.subset(Array((communicator.rank * n)..<((communicator.rank + 1) * n)))
    }

    /// The state a checkpoint holds; every rank calls it.
    ///
    /// Under mpirun every rank's block of the pending round (`num_iterations` > 1) is joined in rank
    /// order, as one process would hold it.
    func checkpointState() throws -> TrainerState {
        guard communicator.size > 1 else { return state }
        var saved = state
        let mine = try state.pendingRound.map { [UInt8](try JSONEncoder().encode($0)) } ?? []
        let parts = communicator.gather(bytes: mine)
        if parts.allSatisfy({ !$0.isEmpty }) {
            saved.pendingRound = Round(
                joining: try parts.map { try JSONDecoder().decode(Round.self, from: Data($0)) })
        }
        return saved
    }

    /// What an `mpirun` job of `ranks` ranks needs of the config, each refusal naming the key.
    static func checkDistributed(_ config: GRPOConfig, ranks: Int) throws {
        let G = config.numGenerations
        guard config.promptsPerRound % ranks == 0 else {
            throw TrainingError.distributed(
                "per_step_prompts \(config.promptsPerRound) does not divide among \(ranks) ranks: each rank owns whole "
                    + "prompt groups, the same number of them")
        }
        let local = config.promptsPerRound / ranks * G
        guard local % config.optimizer.gradientAccumulationSteps == 0 else {
            throw TrainingError.distributed(
                "gradient_accumulation_steps \(config.optimizer.gradientAccumulationSteps) does not divide a rank's "
                    + "\(local) completions")
        }
        let unsupported: [(Bool, String)] = [
            (config.dynamicSampling, "dynamic_sampling"), (config.ppo != nil, "algorithm: ppo"),
        ]
        if let (_, key) = unsupported.first(where: \.0) {
            throw TrainingError.distributed("\(key) does not run across ranks yet; run it as one process")
        }
    }
}

extension Communicator {
    /// Sums `parameters`' gradients over every rank, in place (for LoRA, the adapters' only).
    func sumGradients(of parameters: ParameterStore) {
        let gradients = parameters.gradients
        sum(UnsafeMutableBufferPointer(start: gradients.pointer, count: gradients.count))
    }
}
