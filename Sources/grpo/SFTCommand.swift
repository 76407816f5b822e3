import ArgumentParser
import Foundation
import Training

struct SFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Supervised fine-tuning on JSONL (prompt/completion, messages or text).",
        discussion: """
            Keys are TRL's SFTConfig names, in a YAML file or as flags (flags win): model (or \
            model_name_or_path: a folder, or a Hub id in the local Hugging Face cache), model_revision, dataset, \
            output_dir, per_device_train_batch_size, gradient_accumulation_steps, num_train_epochs, \
            max_steps, max_length, completion_only_loss (or assistant_only_loss; default true), \
            learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay, lr_scheduler_type, \
            warmup_steps, warmup_ratio, max_grad_norm, gradient_checkpointing, save_steps, \
            forward_batch_tokens (memory only), max_nonfinite_steps, shuffle_dataset, seed, \
            overwrite_output_dir, chat_template_kwargs, precision (float32, bf16, auto; or TRL's bf16: \
            true); LoRA: use_peft, lora_r, lora_alpha, lora_dropout, \
            lora_target_modules (or all-linear), use_rslora, adapter.

            Dataset lines: {"prompt": "...", "completion": "..."} (EOS appended), {"messages": [...]} \
            (assistant turns learned), {"prompt": [...], "completion": [...]} (message lists), or \
            {"text": "..."}. `grpo sample` writes lines this command reads.

            Example: grpo sft --config sft.yaml --num_train_epochs 2
            """)

    @OptionGroup var options: RunOptions

    func run() throws {
        let settings = try SFTConfig(try options.values())
        let checkpoint = try options.checkpoint(outputDir: settings.outputDir)
        let progress = ProgressLine()
        let trainer = try SFTTrainer(config: settings, resumeFrom: checkpoint) { progress.show($0) }
        trainer.shouldStop = stopOnInterrupt()
        try trainer.train()
        progress.finish()
        try exitIfInterrupted(step: trainer.state.step)
        print("fine-tuned model: \(settings.outputDir) (metrics in \(settings.outputDir)/metrics.jsonl)")
    }
}
