import Foundation

/// A TRL key this project accepts without acting on it, and why.
public struct NotedKey: Sendable {
    /// The key's name, or a prefix ending in `_` or `*` that covers a family (`vllm_`, `hub_`).
    public let name: String
    /// Why it does not apply here (printed once when the key is given).
    public let reason: String
    /// When set, the key is only accepted at this value (TRL's default, which asks for nothing this
    /// project lacks); any other value is refused, as it asks for a feature that is not here.
    public let onlyValue: String?

    public init(_ name: String, _ reason: String, onlyAt onlyValue: String? = nil) {
        self.name = name
        self.reason = reason
        self.onlyValue = onlyValue
    }

    func matches(_ key: String) -> Bool {
        name.hasSuffix("*") ? key.hasPrefix(name.dropLast()) : key == name
    }
}

extension ConfigTable {
    /// TRL keys accepted without acting on them: each given one is noted once with its reason; those
    /// with `onlyAt` are refused at any other value, since they ask for something not here.
    public static let noted: [NotedKey] = [
        NotedKey("use_vllm", "sampling runs in this process on its own KV cache; there is no vLLM"),
        NotedKey("vllm_*", "sampling runs in this process on its own KV cache; there is no vLLM"),
        NotedKey("use_transformers_paged", "sampling runs on this project's own batched KV cache"),
        NotedKey(
            "use_transformers_continuous_batching", "sampling runs on this project's own batched KV cache"),
        NotedKey("transformers_continuous_batching_config", "sampling runs on this project's own KV cache"),
        NotedKey("cache_implementation", "sampling runs on this project's own KV cache"),
        NotedKey(
            "generation_kwargs", "sampling takes the named keys (temperature, top_p, ...) only",
            onlyAt: "none"),
        NotedKey("use_cache", "the KV cache is used for sampling and not for training passes"),
        NotedKey("attn_implementation", "attention is this project's own kernel"),
        NotedKey("dtype", "weights load as float32 master copies; precision (or bf16) sets the matmuls"),
        NotedKey(
            "torch_dtype", "weights load as float32 master copies; precision (or bf16) sets the matmuls"),
        NotedKey("tf32", "CPUs have no TF32"),
        NotedKey("use_cpu", "everything runs on the CPU"),
        NotedKey("bf16_full_eval", "evaluation runs at the training precision"),
        NotedKey("fp16_full_eval", "evaluation runs at the training precision", onlyAt: "false"),
        NotedKey("cast_lm_head_to_fp32", "lm_head's output (the logits) is always float32"),
        NotedKey("trust_remote_code", "no model code is loaded or run: the architectures are built in"),
        NotedKey("model_init_kwargs", "models load from their config.json"),
        NotedKey("push_to_hub", "nothing is uploaded: the model stays in output_dir", onlyAt: "false"),
        NotedKey("hub_*", "nothing is uploaded: the model stays in output_dir"),
        NotedKey("log_completions_hub_repo", "nothing is uploaded"),
        NotedKey("deepspeed", "no DeepSpeed: several processes run data-parallel under mpirun"),
        NotedKey("fsdp*", "no sharding: every mpirun rank holds the whole model"),
        NotedKey(
            "ddp_*",
            "mpirun runs the data-parallel job over MPI (ddp_bucket_cap_mb applies); this is PyTorch's DDP"),
        NotedKey("accelerator_config", "no Accelerate: several processes run under mpirun"),
        NotedKey("parallelism_config", "data parallelism only, under mpirun"),
        NotedKey("local_rank", "ranks come from mpirun"),
        NotedKey("ds3_gather_for_generation", "no DeepSpeed ZeRO-3: every mpirun rank holds the whole model"),
        NotedKey("average_tokens_across_devices", "under mpirun token counts are always summed across ranks"),
        NotedKey("save_on_each_node", "under mpirun rank 0 alone writes"),
        NotedKey("log_on_each_node", "under mpirun rank 0 alone logs"),
        NotedKey("log_level", "progress goes to stderr, metrics to metrics.jsonl"),
        NotedKey("log_level_replica", "under mpirun rank 0 alone logs"),
        NotedKey("disable_tqdm", "the progress line is drawn only on a terminal"),
        NotedKey("run_name", "runs are named by output_dir"),
        NotedKey("project", "runs are named by output_dir"),
        NotedKey("trackio_*", "metrics go to metrics.jsonl (and TensorBoard with report_to)"),
        NotedKey("dataloader_*", "data is read into memory once; there are no loader workers"),
        NotedKey("dataset_num_proc", "data is read into memory once"),
        NotedKey("dataset_config", "datasets are local files"),
        NotedKey("dataset_streaming", "datasets are local files read into memory", onlyAt: "false"),
        NotedKey("dataset_kwargs", "datasets are local files"),
        NotedKey("remove_unused_columns", "every field stays available to the rewards"),
        NotedKey("torch_compile*", "there is no PyTorch: the kernels are compiled ahead of time"),
        NotedKey("torch_empty_cache_steps", "there is no PyTorch allocator cache"),
        NotedKey("enable_jit_checkpoint", "there is no PyTorch"),
        NotedKey("use_liger_kernel", "the loss is this project's own fused kernel", onlyAt: "false"),
        NotedKey("liger_kernel_config", "the loss is this project's own fused kernel"),
        NotedKey("gradient_checkpointing_kwargs", "gradient_checkpointing recomputes whole layers"),
        NotedKey("activation_checkpointing*", "gradient_checkpointing recomputes whole layers"),
        NotedKey("activation_offloading", "activations stay in memory (use gradient_checkpointing)"),
        NotedKey("full_determinism", "runs are always deterministic for a seed and machine"),
        NotedKey("data_seed", "seed fixes the data order"),
        NotedKey("skip_memory_metrics", "memory is measured by grpo-bench"),
        NotedKey("include_num_input_tokens_seen", "tokens_per_second and num_tokens are logged"),
        NotedKey(
            "logging_nan_inf_filter", "steps with a NaN or infinite loss are skipped (max_nonfinite_steps)"),
        NotedKey("do_train", "grpo train trains"),
        NotedKey("do_eval", "evaluation runs when eval_strategy is not no"),
        NotedKey("do_predict", "grpo generate and grpo eval predict"),
        NotedKey("prediction_loss_only", "evaluation reports task metrics"),
        NotedKey("per_device_eval_batch_size", "held-out prompts are sampled in one batch"),
        NotedKey("eval_accumulation_steps", "held-out prompts are sampled in one batch"),
        NotedKey("eval_delay", "evaluation follows eval_strategy", onlyAt: "0"),
        NotedKey("eval_do_concat_batches", "held-out prompts are sampled in one batch"),
        NotedKey("eval_use_gather_object", "under mpirun rank 0 alone evaluates; nothing is gathered"),
        NotedKey("batch_eval_metrics", "held-out prompts are sampled in one batch"),
        NotedKey("include_for_metrics", "evaluation reports task metrics"),
        NotedKey("label_names", "there are no labels in GRPO"),
        NotedKey("length_column_name", "the dataset is read whole"),
        NotedKey("group_by_length", "the dataset is read whole", onlyAt: "false"),
        NotedKey("ignore_data_skip", "a resumed run continues the data order exactly"),
        NotedKey("restore_callback_states_from_checkpoint", "there are no callbacks"),
        NotedKey("auto_find_batch_size", "forward_batch_tokens bounds memory", onlyAt: "false"),
        NotedKey("pad_to_multiple_of", "sequences are packed, not padded"),
        NotedKey("padding_free", "sequences are always packed without padding"),
        NotedKey("save_only_model", "checkpoints keep the optimizer so --resume continues exactly"),
        NotedKey("load_best_model_at_end", "the last model is kept", onlyAt: "false"),
        NotedKey("metric_for_best_model", "the last model is kept"),
        NotedKey("greater_is_better", "the last model is kept"),
        NotedKey("train_sampling_strategy", "prompts are drawn shuffled per epoch (shuffle_dataset)"),
        NotedKey("dataloader_in_order", "prompts are drawn as shuffle_dataset says"),
        NotedKey("log_multimodal", "text models only"),
        NotedKey("log_unique_prompts", "one sampled completion is printed per logging step"),
        NotedKey("router_aux_loss_coef", "the architectures here are dense, not mixture-of-experts"),
        NotedKey("ignore_bias_buffers", "PyTorch DDP's buffer setting; models here keep no buffers"),
        NotedKey("chat_template_path", "the model folder's own chat template is used", onlyAt: "none"),
        NotedKey("eos_token", "the model folder's own eos token is used", onlyAt: "none"),
        NotedKey("pad_token", "sequences are packed, not padded"),
        NotedKey("eval_packing", "packing is not offered"),
        NotedKey("packing_strategy", "packing is not offered"),
        NotedKey("neftune_noise_alpha", "NEFTune embedding noise is not offered", onlyAt: "none"),
        NotedKey("label_smoothing_factor", "label smoothing is not offered", onlyAt: "0"),
        NotedKey("optim_args", "AdamW takes adam_beta1, adam_beta2, adam_epsilon", onlyAt: "none"),
        NotedKey("optim_target_modules", "AdamW trains every trainable parameter", onlyAt: "none"),
        // Algorithm variants TRL offers and this project does not (yet): accepted at TRL's default.
        NotedKey("top_entropy_quantile", "training on high-entropy tokens only is not offered", onlyAt: "1"),
        NotedKey(
            "multi_objective_aggregation", "rewards are summed with their weights, then normalised",
            onlyAt: "sum_then_normalize"),
        NotedKey("off_policy_mask_threshold", "off-policy sequence masking is not offered", onlyAt: "none"),
        NotedKey("sapo_*", "the SAPO loss is not offered"),
        NotedKey("vespo_*", "the VESPO loss is not offered"),
        NotedKey("entropy_coef", "an entropy bonus is not offered", onlyAt: "0"),
        NotedKey("entropy_coef_*", "an entropy bonus is not offered"),
        NotedKey("entropy_target", "an entropy bonus is not offered"),
        NotedKey("use_adaptive_entropy", "an entropy bonus is not offered", onlyAt: "false"),
        NotedKey(
            "sync_ref_model", "the reference model stays frozen (TR-DPO-style syncing is not offered)",
            onlyAt: "false"),
        NotedKey("ref_model_mixup_alpha", "the reference model stays frozen"),
        NotedKey("ref_model_sync_steps", "the reference model stays frozen"),
        NotedKey(
            "max_tool_calling_iterations", "tool calling during sampling is not offered", onlyAt: "none"),
        NotedKey("load_in_4bit", "quantized bases are not offered", onlyAt: "false"),
        NotedKey("load_in_8bit", "quantized bases are not offered", onlyAt: "false"),
        NotedKey("bnb_*", "quantized bases are not offered"),
        NotedKey("use_bnb_nested_quant", "quantized bases are not offered", onlyAt: "false"),
        NotedKey("use_dora", "DoRA adapters are not offered", onlyAt: "false"),
        NotedKey("lora_modules_to_save", "only LoRA adapters train", onlyAt: "none"),
        NotedKey("lora_target_parameters", "LoRA targets modules (lora_target_modules)", onlyAt: "none"),
        NotedKey("debug", "there are no debug modes"),
        // open-r1's own keys (its GRPOConfig, SFTConfig and GRPOScriptArguments).
        NotedKey("benchmarks", "benchmarks run with grpo eval after training"),
        NotedKey("callbacks", "there are no callbacks"),
        NotedKey("overwrite_hub_revision", "nothing is uploaded"),
        NotedKey("push_to_hub_revision", "nothing is uploaded", onlyAt: "false"),
        NotedKey("wandb_*", "metrics go to metrics.jsonl (and TensorBoard with report_to)"),
        NotedKey("dataset_mixture", "the dataset is one local file or folder (dataset_name)", onlyAt: "none"),
        NotedKey("cosine_*", "open-r1's cosine reward is not offered; the length reward (Kimi k1.5) is"),
        NotedKey("repetition_n_grams", "open-r1's repetition reward is not offered"),
        NotedKey("repetition_max_penalty", "open-r1's repetition reward is not offered"),
        NotedKey("code_*", "code rewards run through the external reward here"),
        NotedKey("parallel_code_exec_per_proc", "code rewards run through the external reward here"),
        NotedKey("e2b_router_url", "code rewards run through the external reward here"),
        NotedKey("morph_router_url", "code rewards run through the external reward here"),
        NotedKey("ioi_provider", "code rewards run through the external reward here"),
        // Keys grpo train honours that grpo sft does not (grpo's table wins for grpo).
        NotedKey(
            "eval_strategy", "sft measures no held-out set during training (grpo eval does after)",
            onlyAt: "no"),
        NotedKey("eval_steps", "sft measures no held-out set during training"),
        NotedKey("eval_on_start", "sft measures no held-out set during training", onlyAt: "false"),
        NotedKey("dataset_test_split", "sft measures no held-out set during training"),
        NotedKey("loss_type", "sft's loss is the mean negative log-likelihood (TRL's nll)", onlyAt: "nll"),
    ]
}
