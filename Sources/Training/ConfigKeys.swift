import Foundation
import Models

/// One configuration key a trainer reads: its name, type, default and help.
///
/// A trainer's table of these is the one list its keys live in: `ConfigValues` takes each read's
/// default from it, refuses keys outside it (with a did-you-mean), records what each key resolved to
/// (the run's summary), and `--help` prints it.
public struct ConfigKey: Sendable {
    /// The key's type and default.
    public enum Kind: Sendable {
        case int(Int?)
        case number(Double?)
        case bool(Bool)
        case text(String?)
        case choice([String], String)
        case list([String]?)
        case mapping
    }

    public let name: String
    public let kind: Kind
    public let help: String
    /// Shown as the default when it derives from other keys ("epsilon", "1 each").
    public let derivedDefault: String?

    public init(_ name: String, _ kind: Kind, _ help: String, default derivedDefault: String? = nil) {
        self.name = name
        self.kind = kind
        self.help = help
        self.derivedDefault = derivedDefault
    }

    /// The type as `--help` shows it.
    public var typeLabel: String {
        switch kind {
        case .int: "int"
        case .number: "number"
        case .bool: "bool"
        case .text: "text"
        case .choice(let options, _): options.joined(separator: "|")
        case .list: "list"
        case .mapping: "mapping"
        }
    }

    /// The default as `--help` shows it.
    public var defaultLabel: String {
        if let derivedDefault { return derivedDefault }
        switch kind {
        case .int(let value): return value.map(String.init) ?? "none"
        case .number(let value): return value.map { formatNumber($0) } ?? "none"
        case .bool(let value): return value ? "true" : "false"
        case .text(let value): return value ?? "none"
        case .choice(_, let value): return value
        case .list(let value): return value.map { $0.joined(separator: ",") } ?? "none"
        case .mapping: return "{}"
        }
    }
}

/// `text` in lines of at most `width` characters (a longer word stands alone), each after `indent`.
func wrap(_ text: String, width: Int, indent: String) -> String {
    var lines: [String] = []
    var line = ""
    for word in text.split(separator: " ") {
        if !line.isEmpty && indent.count + line.count + 1 + word.count > width {
            lines.append(indent + line)
            line = ""
        }
        line += (line.isEmpty ? "" : " ") + word
    }
    if !line.isEmpty { lines.append(indent + line) }
    return lines.joined(separator: "\n")
}

/// `1e-06` as `1e-06`, `0.2` as `0.2`, `3.0` as `3`.
func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return "\(value)"
}

/// The keys of `grpo train` and `grpo sft`, in the groups `--help` shows them in.
public enum ConfigTable {
    static func run(outputDir: String) -> [ConfigKey] {
        [
            ConfigKey(
                "model", .text(nil), "a model folder, or a Hub id in the local Hugging Face cache (required)"),
            ConfigKey("model_name_or_path", .text(nil), "TRL's name for model"),
            ConfigKey(
                "model_revision", .text("main"), "the cached revision of a Hub id: a branch, tag or commit"),
            ConfigKey(
                "dataset", .text(nil),
                "a JSONL or JSON file, or a folder holding TRAIN_SPLIT.jsonl (required)"),
            ConfigKey(
                "dataset_name", .text(nil), "TRL's name for dataset (local files only: nothing is downloaded)"
            ),
            ConfigKey("dataset_train_split", .text("train"), "the file of a dataset folder to train on"),
            ConfigKey("output_dir", .text(outputDir), "where checkpoints, metrics and the trained model go"),
            ConfigKey(
                "overwrite_output_dir", .bool(false),
                "delete another run's checkpoints in output_dir and start over"),
            ConfigKey(
                "resume_from_checkpoint", .text(nil),
                "a checkpoint folder to continue from, or true for the newest in output_dir"),
            ConfigKey("seed", .int(42), "seeds the data order, sampling, dropout and new adapters"),
            ConfigKey("shuffle_dataset", .bool(true), "draw the dataset in a fresh order each epoch"),
            ConfigKey(
                "chat_template", .text(nil),
                "a Jinja chat template used instead of the model folder's (open-r1's key)"),
            ConfigKey(
                "chat_template_kwargs", .mapping,
                "variables for the chat template (enable_thinking: false, ...), or JSON object text"),
        ]
    }

    static func optimizer(learningRate: Double) -> [ConfigKey] {
        [
            ConfigKey("learning_rate", .number(learningRate), "AdamW's peak learning rate"),
            ConfigKey("adam_beta1", .number(0.9), "AdamW's first-moment decay"),
            ConfigKey("adam_beta2", .number(0.999), "AdamW's second-moment decay"),
            ConfigKey("adam_epsilon", .number(1e-8), "AdamW's epsilon"),
            ConfigKey("weight_decay", .number(0), "AdamW's decoupled weight decay"),
            ConfigKey(
                "optim",
                .choice(["adamw_torch_fused", "adamw_torch", "adamw_hf", "adamw"], "adamw_torch_fused"),
                "the optimizer: every AdamW spelling means this project's AdamW"),
            ConfigKey(
                "lr_scheduler_type", .choice(LRSchedulerType.allCases.map(\.rawValue), "linear"),
                "the learning-rate curve after warmup"),
            ConfigKey(
                "lr_scheduler_kwargs", .mapping, "cosine_with_min_lr's min_lr or min_lr_rate"),
            ConfigKey(
                "warmup_steps", .number(0), "steps of linear warmup from 0; below 1, a fraction of the run"),
            ConfigKey("warmup_ratio", .number(nil), "warmup as a fraction of the run (older TRL's key)"),
            ConfigKey(
                "max_grad_norm", .number(1), "clip the gradient's global norm to this (0: no clipping)"),
            ConfigKey(
                "gradient_accumulation_steps", .int(1),
                "micro-batches a step's gradient is summed over (a memory knob)"),
            ConfigKey(
                "gradient_checkpointing", .bool(false),
                "recompute each layer's activations in the backward pass (less memory, more time)"),
        ]
    }

    static func precision(forwardBatchTokens: Int) -> [ConfigKey] {
        [
            ConfigKey(
                "precision", .choice(PrecisionSetting.allCases.map(\.rawValue), "float32"),
                "matrix products in float32, in bf16 (float32 accumulation), or bf16 where the CPU has it"),
            ConfigKey("bf16", .bool(false), "TRL's switch: true means precision bf16", default: "none"),
            ConfigKey("fp16", .bool(false), "float16 is not offered on CPUs; true is refused (use bf16)"),
            ConfigKey(
                "forward_batch_tokens", .int(forwardBatchTokens),
                "tokens per forward/backward pass at most (memory only)"),
        ]
    }

    static let distributed: [ConfigKey] = [
        ConfigKey(
            "ddp_bucket_cap_mb", .number(nil),
            "under mpirun: MiB of gradients per all-reduce bucket, started while the backward runs",
            default: "25")
    ]

    static let lora: [ConfigKey] = [
        ConfigKey("use_peft", .bool(false), "train LoRA adapters instead of the whole model"),
        ConfigKey("lora_r", .int(16), "adapter rank (giving it turns LoRA on)"),
        ConfigKey("lora_alpha", .number(32), "adapter scale numerator (alpha / r, or alpha / sqrt(r))"),
        ConfigKey("lora_dropout", .number(0.05), "dropout on the adapters' input"),
        ConfigKey(
            "lora_target_modules", .list(nil),
            "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear",
            default: "q_proj,v_proj"),
        ConfigKey("use_rslora", .bool(false), "scale by alpha / sqrt(r) (rank-stabilised LoRA)"),
        ConfigKey("lora_task_type", .choice(["CAUSAL_LM"], "CAUSAL_LM"), "PEFT's task type (causal LM only)"),
        ConfigKey("adapter", .text(nil), "an existing PEFT adapter folder to continue training"),
        ConfigKey("disable_dropout", .bool(false), "turn dropout off (here: the adapters' dropout)"),
    ]

    static func schedule(saveSteps: Double, loggingSteps: Double) -> [ConfigKey] {
        [
            ConfigKey("max_steps", .int(-1), "optimizer steps to run; -1 runs num_train_epochs"),
            ConfigKey("num_train_epochs", .number(3), "passes over the dataset when max_steps is -1"),
            ConfigKey(
                "save_strategy", .choice(SaveStrategy.allCases.map(\.rawValue), "steps"),
                "when checkpoints are written (a stopped run always writes one)"),
            ConfigKey(
                "save_steps", .number(saveSteps), "steps between checkpoints; below 1, a fraction of the run"),
            ConfigKey(
                "save_total_limit", .int(nil),
                "keep at most this many checkpoints, deleting the oldest (never the newest complete one)"),
            ConfigKey(
                "logging_strategy", .choice(["steps", "epoch", "no"], "steps"),
                "when metrics are logged (averaged since the last log)"),
            ConfigKey(
                "logging_steps", .number(loggingSteps),
                "steps between metrics lines (averages); below 1, a fraction of the run"),
            ConfigKey("logging_first_step", .bool(false), "also log the first step"),
            ConfigKey(
                "report_to", .list(["none"]),
                "none, or tensorboard (event files under logging_dir); others are noted and skipped"),
            ConfigKey(
                "logging_dir", .text(nil), "where TensorBoard event files go", default: "OUTPUT_DIR/runs"),
            ConfigKey(
                "max_nonfinite_steps", .int(5),
                "steps with a NaN or infinite loss or gradient to skip before stopping"),
        ]
    }

    static let evaluation: [ConfigKey] = [
        ConfigKey(
            "eval_dataset", .text(nil), "held-out prompts (a JSONL or JSON file) to measure during training"),
        ConfigKey(
            "dataset_test_split", .text("test"),
            "with a dataset folder and eval_strategy, the file of held-out prompts"),
        ConfigKey(
            "eval_strategy", .choice(["no", "steps", "epoch"], "no"), "when the held-out set is measured"),
        ConfigKey("eval_steps", .number(nil), "steps between evaluations", default: "logging_steps"),
        ConfigKey("eval_on_start", .bool(false), "measure the held-out set before the first step"),
        ConfigKey(
            "num_generations_eval", .int(nil), "completions per held-out prompt (pass@k's k)",
            default: "num_generations"),
        ConfigKey(
            "eval_temperature", .number(nil), "sampling temperature for held-out completions (0: greedy)",
            default: "temperature"),
        ConfigKey(
            "eval_max_prompts", .int(nil), "measure at most this many held-out prompts", default: "all"),
    ]

    /// `grpo train`'s keys, in the sections `--help` shows.
    public static let grpoSections: [(title: String, keys: [ConfigKey])] = [
        (
            "Model and data",
            run(outputDir: "grpo-output") + [
                ConfigKey(
                    "dataset_prompt_column", .text(nil),
                    "the field holding the prompt, made a user message (open-r1's key)", default: "prompt"),
                ConfigKey(
                    "system_prompt", .text(nil),
                    "a system message put before each prompt, which then goes through the chat template"),
                ConfigKey("max_prompt_length", .int(nil), "keep at most this many of a prompt's last tokens"),
            ]
        ),
        (
            "Sampling",
            [
                ConfigKey("num_generations", .int(8), "completions sampled per prompt: the group"),
                ConfigKey(
                    "per_step_prompts", .int(4), "prompts per optimizer step",
                    default: "4, or generation_batch_size / num_generations"),
                ConfigKey(
                    "per_device_train_batch_size", .int(nil),
                    "completions per micro-batch: a step takes this x gradient_accumulation_steps (TRL)"),
                ConfigKey("generation_batch_size", .int(nil), "completions sampled per step (TRL)"),
                ConfigKey(
                    "steps_per_generation", .int(nil), "micro-batches per generation (TRL)",
                    default: "gradient_accumulation_steps"),
                ConfigKey("max_completion_length", .int(256), "tokens a completion may have"),
                ConfigKey("temperature", .number(1), "sampling temperature"),
                ConfigKey("top_p", .number(1), "nucleus sampling's probability mass"),
                ConfigKey("top_k", .int(0), "sample among the k likeliest tokens (0: all)"),
                ConfigKey("min_p", .number(0), "drop tokens below min_p x the likeliest token's probability"),
                ConfigKey(
                    "repetition_penalty", .number(1), "divide repeated tokens' positive logits by this"),
            ]
        ),
        (
            "Algorithm",
            [
                ConfigKey(
                    "beta", .number(0), "KL penalty towards the reference model (0: no reference model)"),
                ConfigKey("epsilon", .number(0.2), "the ratio clip's lower bound: 1 - epsilon"),
                ConfigKey(
                    "epsilon_high", .number(nil),
                    "the ratio clip's upper bound: 1 + epsilon_high (cispo: the cap)",
                    default: "epsilon"),
                ConfigKey(
                    "delta", .number(nil), "two-sided clipping: the unclipped ratio capped at delta too (> 1)"
                ),
                ConfigKey(
                    "importance_sampling_level",
                    .choice(ImportanceSamplingLevel.allCases.map(\.rawValue), "token"),
                    "one ratio per token, or per sequence (GSPO: exp of the mean log-ratio)"),
                ConfigKey(
                    "use_bias_correction_kl", .bool(true),
                    "multiply the k3 KL by the ratio: the unbiased reverse-KL gradient (DeepSeek-V3.2)"),
                ConfigKey(
                    "loss_type", .choice(LossType.allCases.map(\.rawValue), "dapo"),
                    "how token losses are averaged"),
                ConfigKey(
                    "scale_rewards", .choice(RewardScaling.allCases.map(\.rawValue), "group"),
                    "divide advantages by the group's or batch's std, or not (true: group, false: none)"),
                ConfigKey(
                    "algorithm", .choice(AdvantageEstimator.allCases.map(\.rawValue), "grpo"),
                    "group-relative (GRPO), leave-one-out (RLOO), REINFORCE++-baseline, or PPO (a critic with GAE)"
                ),
                ConfigKey(
                    "normalize_advantages", .bool(false),
                    "rloo: whiten advantages over the batch (TRL's RLOO key)"),
                ConfigKey("num_iterations", .int(1), "optimizer steps per generation round (mu)"),
                ConfigKey(
                    "mask_truncated_completions", .bool(false),
                    "leave completions cut at max_completion_length out"),
                ConfigKey(
                    "dynamic_sampling", .bool(false), "resample until every group has reward variance (DAPO)"),
                ConfigKey(
                    "dynamic_sampling_max_rounds", .int(8), "extra sampling rounds dynamic sampling may take"),
            ]
        ),
        (
            "PPO (algorithm: ppo; TRL's PPOConfig)",
            [
                ConfigKey(
                    "value_model", .text(nil),
                    "the critic: a ForSequenceClassification folder (1 label) or a causal LM given a new score head",
                    default: "the policy, new score head"),
                ConfigKey(
                    "kl_coef", .number(0.05), "weight of the per-token KL to the reference in the reward"),
                ConfigKey(
                    "kl_estimator", .choice(KLEstimator.allCases.map(\.rawValue), "k1"),
                    "k1: logp - ref_logp; k3: (r - 1) - log r"),
                ConfigKey("cliprange", .number(0.2), "the policy ratio's clip: 1 +- cliprange"),
                ConfigKey("vf_coef", .number(0.1), "the value loss's weight"),
                ConfigKey(
                    "cliprange_value", .number(0.2), "how far a value may move from the rollout's unclipped"),
                ConfigKey("gamma", .number(1), "GAE's discount"),
                ConfigKey("lam", .number(0.95), "GAE's lambda"),
                ConfigKey("num_ppo_epochs", .int(4), "passes over each rollout batch"),
                ConfigKey(
                    "num_mini_batches", .int(1),
                    "optimizer steps per pass; a rollout is this many steps' batches"),
                ConfigKey("whiten_rewards", .bool(false), "whiten token rewards over the batch (scale only)"),
                ConfigKey(
                    "missing_eos_penalty", .number(nil),
                    "subtracted from the score of a completion without a stop token"),
            ]
        ),
        (
            "Rewards",
            [
                ConfigKey(
                    "rewards", .list(["accuracy"]),
                    "rewards by name (accuracy, format, soft_overlong_punishment, length, countdown, external), "
                        + "or mappings with name and options"),
                ConfigKey("reward_funcs", .list(nil), "TRL's and open-r1's name for rewards"),
                ConfigKey("reward_weights", .list(nil), "a weight per reward", default: "1 each"),
                ConfigKey(
                    "importance_sampling_correction", .bool(false),
                    "truncated importance sampling between sampler and trainer (also vllm_importance_sampling_*)"
                ),
                ConfigKey(
                    "importance_sampling_mode",
                    .choice(ImportanceSamplingMode.allCases.map(\.rawValue), "sequence_mask"),
                    "TRL's modes: token_truncate, token_mask, sequence_truncate, sequence_mask"),
                ConfigKey("importance_sampling_clip_max", .number(3), "the importance weight's cap"),
                ConfigKey("importance_sampling_clip_min", .number(nil), "the masking modes' lower bound"),
                ConfigKey(
                    "vllm_importance_sampling_correction", .bool(false), "TRL's name", default: "see above"),
                ConfigKey("vllm_importance_sampling_mode", .text(nil), "TRL's name", default: "see above"),
                ConfigKey(
                    "vllm_importance_sampling_clip_max", .number(nil), "TRL's name", default: "see above"),
                ConfigKey(
                    "vllm_importance_sampling_clip_min", .number(nil), "TRL's name", default: "see above"),
            ]
        ),
        ("Optimizer", optimizer(learningRate: 1e-6)),
        (
            "Precision and memory",
            precision(forwardBatchTokens: 1024) + [
                ConfigKey("max_cache_mib", .int(4096), "the KV cache's memory limit while sampling")
            ]
        ),
        ("LoRA", lora),
        ("Several processes (mpirun)", distributed),
        (
            "Length, logging, saving",
            schedule(saveSteps: 500, loggingSteps: 10) + [
                ConfigKey(
                    "log_completions", .bool(false), "print a sampled completion at every logging step",
                    default: "false (log_completions_steps: 10)"),
                ConfigKey(
                    "log_completions_steps", .int(nil), "steps between printed samples (0: none)",
                    default: "10"),
                ConfigKey(
                    "num_completions_to_print", .int(nil), "completions printed each time", default: "1"),
            ]
        ),
        ("Evaluation during training", evaluation),
    ]

    /// `grpo sft`'s keys, in the sections `--help` shows.
    public static let sftSections: [(title: String, keys: [ConfigKey])] = [
        (
            "Model and data",
            run(outputDir: "sft-output") + [
                ConfigKey(
                    "per_device_train_batch_size", .int(8),
                    "sequences per micro-batch: a step takes this x gradient_accumulation_steps"),
                ConfigKey(
                    "max_length", .int(1024), "tokens per example at most (longer ones are cut at the end)"),
                ConfigKey(
                    "truncation_mode", .choice(["keep_start"], "keep_start"), "cut long examples at the end"),
                ConfigKey(
                    "completion_only_loss", .bool(true),
                    "learn only completions (prompt/completion data) and assistant turns (chats)"),
                ConfigKey(
                    "assistant_only_loss", .bool(true), "TRL's name for chats",
                    default: "completion_only_loss"),
                ConfigKey("dataset_text_field", .text("text"), "the field of plain-text examples"),
                ConfigKey(
                    "packing", .bool(false), "packing examples into rows is not offered: true is refused"),
            ]
        ),
        ("Optimizer", optimizer(learningRate: 2e-5)),
        ("Precision and memory", precision(forwardBatchTokens: 4096)),
        ("LoRA", lora),
        ("Several processes (mpirun)", distributed),
        ("Length, logging, saving", schedule(saveSteps: 500, loggingSteps: 10)),
    ]

    /// `grpo train`'s keys.
    public static let grpo = grpoSections.flatMap(\.keys)
    /// `grpo sft`'s keys.
    public static let sft = sftSections.flatMap(\.keys)

    /// The keys of `sections` as `--help` prints them: a line per key with its type and default.
    public static func help(_ sections: [(title: String, keys: [ConfigKey])]) -> String {
        sections.map { section in
            section.title + ":\n"
                + section.keys.map { key in
                    "  \(key.name): \(key.typeLabel), default \(key.defaultLabel)\n"
                        + wrap(key.help, width: 78, indent: "      ")
                }.joined(separator: "\n")
        }.joined(separator: "\n\n")
    }
}

/// When checkpoints are written (TRL's `save_strategy`).
public enum SaveStrategy: String, Sendable, CaseIterable {
    case steps
    case epoch
    case no
}
