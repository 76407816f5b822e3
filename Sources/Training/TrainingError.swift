import Foundation

/// Errors that stop a run.
public enum TrainingError: Error, CustomStringConvertible {
    case missingTokenizer(folder: String)
    case promptTooLong(path: String, line: Int, tokens: Int, maxCompletionLength: Int, context: Int)
    case tooManyNonfiniteSteps(Int)
    case missingCritic(checkpoint: String)
    case criticVocabulary(folder: String, critic: Int, policy: Int)
    /// Ranks of an `mpirun` job whose weights no longer agree.
    case ranksDrifted(step: Int, rank: Int, checksums: [Double])
    /// A setting an `mpirun` job cannot run with.
    case distributed(String)

    public var description: String {
        switch self {
        case .missingTokenizer(let folder):
            "\(folder) has no tokenizer.json: training needs the model's tokenizer to encode prompts and "
                + "decode completions"
        case .promptTooLong(let path, let line, let tokens, let maxCompletionLength, let context):
            "\(path):\(line): the prompt's \(tokens) tokens plus max_completion_length \(maxCompletionLength) "
                + "exceed the model's context of \(context) tokens (set max_prompt_length or shorten it)"
        case .missingCritic(let checkpoint):
            "\(checkpoint) has no \(criticFolderName)/ with a score.weight: algorithm: ppo resumes its critic "
                + "from the checkpoint, and this one was not written by a PPO run"
        case .criticVocabulary(let folder, let critic, let policy):
            "value_model \(folder): its vocab_size \(critic) is smaller than the policy's \(policy); the critic "
                + "reads the policy's tokens"
        case .ranksDrifted(let step, let rank, let checksums):
            "after step \(step) rank \(rank)'s weights differ from rank 0's (parameter checksums \(checksums)): "
                + "every rank must apply the same update; the last checkpoint is intact"
        case .distributed(let why): "under mpirun: \(why)"
        case .tooManyNonfiniteSteps(let count):
            "\(count) steps had a NaN or infinite loss or gradient (max_nonfinite_steps); stopping. The last "
                + "checkpoint is intact: lower learning_rate or check the rewards"
        }
    }
}
