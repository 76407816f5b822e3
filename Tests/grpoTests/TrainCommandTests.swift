import Foundation
import Testing
import Training

/// A toy model folder and a small arithmetic dataset under a fresh temporary folder.
private func toyWorkspace(dataset lines: [String]? = nil) throws -> String {
    let root = NSTemporaryDirectory() + "grpo-train-cli-\(UUID().uuidString)"
    try ToyModel.write(to: root + "/model", layers: 1, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 5)
    let data = lines ?? (1...5).map { #"{"prompt": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }
    try data.joined(separator: "\n").write(toFile: root + "/data.jsonl", atomically: true, encoding: .utf8)
    let yaml = """
        model: \(root)/model
        dataset: \(root)/data.jsonl
        output_dir: \(root)/out
        num_generations: 4
        per_step_prompts: 2
        max_completion_length: 6
        rewards:
          - accuracy
          - name: format
            pattern: ".*[0-9].*"
        reward_weights: [1.0, 0.5]
        learning_rate: 1.0e-3
        max_steps: 3
        save_steps: 2
        logging_steps: 1
        beta: 0.04

        """
    try yaml.write(toFile: root + "/grpo.yaml", atomically: true, encoding: .utf8)
    return root
}

@Test func trainRunsFromYAMLWithFlagOverrides() throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let result = try runGRPO(["train", "--config", root + "/grpo.yaml", "--max_steps", "2", "--seed=3"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stderr.contains("step 2/2"))
    let out = root + "/out"
    for file in [
        "config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl",
        "checkpoint-2/trainer_state.json",
    ] {
        #expect(FileManager.default.fileExists(atPath: out + "/" + file), "missing \(file)")
    }
    let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
    #expect(metrics.split(separator: "\n").count == 2)
    #expect(metrics.contains("\"rewards/format/mean\""))

    let resumed = try runGRPO([
        "train", "--config", root + "/grpo.yaml", "--max_steps", "3", "--seed=3", "--resume",
    ])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("steps 3...3"))
    let eval = try runGRPO([
        "eval", "--model", out, "--dataset", root + "/data.jsonl", "--reward", "format", "--num-generations",
        "3",
        "--max-completion-length", "4",
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stdout.contains("accuracy") && eval.stdout.contains("pass@3"))
}

@Test(arguments: [
    (["--num_generations", "1"], "num_generations: must be at least 2"),
    (
        ["--generation_batch_size", "10"],
        "10 completions a step do not divide into whole groups of num_generations = 4"
    ),
    (["--learning_rat", "1"], "learning_rat: unknown option; did you mean 'learning_rate'?"),
    (["--rewards", "acuracy"], "unknown reward 'acuracy'"),
    (["--loss_type", "ppo"], "loss_type: expected one of grpo, bnpo, dr_grpo, dapo"),
    (["--top_p", "1.5"], "top_p: must be in (0, 1]"),
    (["--reward_weights", "1"], "reward_weights: has 1 weights for 2 rewards"),
    (["--gradient_accumulation_steps", "3"], "3 does not divide the 8 completions"),
    // A flag that needs a value never takes the next flag, or "true", as one.
    (["--output_dir", "--max_steps", "2"], "output_dir: needs a value (--output_dir VALUE"),
    (["--learning_rate", "inf"], "learning_rate: expected a finite number, got inf"),
    (["--max_grad_norm", "nan"], "max_grad_norm: expected a finite number, got nan"),
    (["--temperature", "1e-40"], "temperature: must be at least 0.001"),
    (["--per_step_prompts", "100000000"], "per_step_prompts: 100000000 prompts x 4 completions"),
    (["--seed", "-1"], "seed: must not be negative"),
])
func invalidOptionsAreRefusedBeforeWork(flags: [String], message: String) throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let result = try runGRPO(["train", "--config", root + "/grpo.yaml"] + flags)
    #expect(result.status != 0)
    #expect(result.stderr.contains(message), "\(result.stderr)")
    #expect(!FileManager.default.fileExists(atPath: root + "/out"))
}

@Test func badDatasetsAndFoldersNameTheCause() throws {
    let root = try toyWorkspace(dataset: [#"{"prompt": "1+1=", "answer": 2}"#, #"{"prompt": "2+2="}"#])
    defer { try? FileManager.default.removeItem(atPath: root) }
    let missing = try runGRPO(["train", "--config", root + "/grpo.yaml"])
    #expect(
        missing.stderr.contains("data.jsonl:2: reward 'accuracy' needs the field \"answer\""),
        "\(missing.stderr)")
    try #"{"prompt": "1+1=", "answer": 2}"#.appending("\n{oops").write(
        toFile: root + "/data.jsonl", atomically: true, encoding: .utf8)
    let syntax = try runGRPO(["train", "--config", root + "/grpo.yaml"])
    #expect(syntax.stderr.contains("data.jsonl:2: column"), "\(syntax.stderr)")
    try FileManager.default.removeItem(atPath: root + "/model/tokenizer.json")
    let noTokenizer = try runGRPO(["train", "--config", root + "/grpo.yaml"])
    #expect(noTokenizer.stderr.contains("has no tokenizer.json"), "\(noTokenizer.stderr)")
}

/// Ctrl-C (SIGINT) and SIGTERM, what `timeout`, Slurm and Kubernetes send, both finish the step,
/// save and exit with 128 + the signal's number.
@Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
func aSignalSavesACheckpointAndExits(signal: Int32, status: Int32) throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let process = Process()
    process.executableURL = grpoExecutable()
    process.arguments = [
        "train", "--config", root + "/grpo.yaml", "--max_steps", "100000", "--save_steps", "100000",
    ]
    // A file, not a pipe: nobody reads while it runs, and a full pipe would block the trainer.
    FileManager.default.createFile(atPath: root + "/stderr.txt", contents: nil)
    process.standardError = FileHandle(forWritingAtPath: root + "/stderr.txt")!
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    // Wait for the first step, then interrupt.
    let deadline = Date(timeIntervalSinceNow: 60)
    while !FileManager.default.fileExists(atPath: root + "/out/metrics.jsonl")
        || (try? String(contentsOfFile: root + "/out/metrics.jsonl", encoding: .utf8))?.isEmpty ?? true
    {
        guard Date() < deadline else { break }
        Thread.sleep(forTimeInterval: 0.05)
    }
    kill(process.processIdentifier, signal)
    process.waitUntilExit()
    let stderr = (try? String(contentsOfFile: root + "/stderr.txt", encoding: .utf8)) ?? ""
    #expect(process.terminationStatus == status, "\(stderr)")
    let latest = try #require(
        Checkpoint.latest(in: root + "/out"), "no checkpoint after signal \(signal): \(stderr)")
    #expect(FileManager.default.fileExists(atPath: latest + "/model.safetensors"))
}

/// output_dir belongs to one run: a fresh run into a folder of checkpoints is refused unless
/// overwrite_output_dir, a second run on a locked folder is refused, and a resumed checkpoint must
/// be of this model and run.
@Test func outputFoldersAndCheckpointsBelongToTheirRun() throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let out = root + "/out"
    let train = ["train", "--config", root + "/grpo.yaml", "--max_steps", "2"]
    let first = try runGRPO(train)
    #expect(first.status == 0, "\(first.stderr)")

    let again = try runGRPO(train)
    #expect(again.status == 1)
    #expect(
        again.stderr.contains(
            "output_dir \(out) holds another run's checkpoints (newest: \(out)/checkpoint-2)"))
    #expect(again.stderr.contains("--resume"), "\(again.stderr)")

    let fresh = try runGRPO(train + ["--overwrite_output_dir", "--max_steps", "1", "--save_steps", "1"])
    #expect(fresh.status == 0, "\(fresh.stderr)")
    #expect(!FileManager.default.fileExists(atPath: out + "/checkpoint-2"))
    #expect(FileManager.default.fileExists(atPath: out + "/checkpoint-1/trainer_state.json"))
    let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
    #expect(metrics.split(separator: "\n").count == 1)
    #expect(!FileManager.default.fileExists(atPath: out + "/.grpo-run.lock"))

    let otherSeed = try runGRPO(train + ["--resume-from", out + "/checkpoint-1", "--seed", "9"])
    #expect(otherSeed.stderr.contains("checkpoint-1 belongs to another run: its seed is 42, this run's is 9"))
    let notACheckpoint = try runGRPO(train + ["--resume-from", root + "/model"])
    #expect(notACheckpoint.stderr.contains("\(root)/model is not a checkpoint"), "\(notACheckpoint.stderr)")
    try ToyModel.write(to: root + "/wide", layers: 1, hiddenSize: 48, heads: 2, keyValueHeads: 1, seed: 5)
    let otherModel = try runGRPO(
        train + [
            "--model", root + "/wide", "--resume-from", out + "/checkpoint-1", "--output_dir", root + "/o2",
        ])
    #expect(
        otherModel.stderr.contains("was trained from another model: hidden_size is 32 there and 48 in"),
        "\(otherModel.stderr)")
    #expect(!FileManager.default.fileExists(atPath: root + "/o2"))

    let held = try OutputLock(outputDir: out, resuming: true, overwrite: false)
    let busy = try runGRPO(train + ["--resume", "--max_steps", "3"])
    #expect(busy.status == 1)
    #expect(
        busy.stderr.contains("output_dir \(out) is in use by another run (process \(getpid())"),
        "\(busy.stderr)")
    _ = held
}

/// A tmpfs this test mounts (needs root), or nil where mounting is not allowed.
private func mountTinyFilesystem(bytes: Int) -> String? {
    let path = NSTemporaryDirectory() + "grpo-full-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let mount = Process()
    mount.executableURL = URL(fileURLWithPath: "/bin/mount")
    mount.arguments = ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path]
    mount.standardError = FileHandle.nullDevice
    guard (try? mount.run()) != nil else { return nil }
    mount.waitUntilExit()
    return mount.terminationStatus == 0 ? path : nil
}

/// A full disk during a checkpoint save: a sentence naming the folder and the cause, no
/// half-written folder left, no Foundation error dump.
@Test func aFullDiskIsAClearErrorAndLeavesNothingHalfWritten() throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    guard let disk = mountTinyFilesystem(bytes: 320 << 10) else {
        print("aFullDiskIsAClearError: tmpfs cannot be mounted here (not root?); checked nothing")
        return
    }
    defer {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = [disk]
        try? umount.run()
        umount.waitUntilExit()
        try? FileManager.default.removeItem(atPath: disk)
    }
    let result = try runGRPO([
        "train", "--config", root + "/grpo.yaml", "--output_dir", disk + "/out", "--max_steps", "2",
        "--save_steps", "1",
    ])
    #expect(result.status == 1, "\(result.stderr)")
    #expect(result.stderr.contains("could not save \(disk)/out/checkpoint-"), "\(result.stderr)")
    #expect(result.stderr.contains("No space left on device"), "\(result.stderr)")
    #expect(!result.stderr.contains("NSCocoaErrorDomain"), "\(result.stderr)")
    let left = (try? FileManager.default.contentsOfDirectory(atPath: disk + "/out")) ?? []
    #expect(!left.contains { $0.hasSuffix(".partial") || $0.contains(".tmp-") }, "\(left)")
}

/// `--lora_r` turns LoRA on from the command line; the adapter in output_dir then serves
/// `generate --adapter`, and `grpo merge` folds it into a plain model that generates the same.
@Test func loraFromTheCommandLineThenGenerateAndMerge() throws {
    let root = try toyWorkspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let out = root + "/out"
    let train = try runGRPO([
        "train", "--config", root + "/grpo.yaml", "--max_steps", "2", "--lora_r", "4",
        "--lora_target_modules", "all-linear",
    ])
    #expect(train.status == 0, "\(train.stderr)")
    #expect(FileManager.default.fileExists(atPath: out + "/adapter_model.safetensors"))
    #expect(!FileManager.default.fileExists(atPath: out + "/model.safetensors"))
    let generate = ["generate", "--prompt", "1+1=", "--max-new-tokens", "6", "--temperature", "0"]
    let adapted = try runGRPO(generate + ["--model", root + "/model", "--adapter", out])
    #expect(adapted.status == 0, "\(adapted.stderr)")
    let merge = try runGRPO([
        "merge", "--model", root + "/model", "--adapter", out, "--output", root + "/merged",
    ])
    #expect(merge.status == 0, "\(merge.stderr)")
    #expect(merge.stdout.contains("7 adapted modules merged"), "\(merge.stdout)")
    let merged = try runGRPO(generate + ["--model", root + "/merged"])
    #expect(merged.stdout == adapted.stdout, "merged: \(merged.stdout) adapted: \(adapted.stdout)")
    // The toy model has one layer: 7 modules.
    let resumed = try runGRPO([
        "train", "--config", root + "/grpo.yaml", "--max_steps", "3", "--lora_r", "4",
        "--lora_target_modules", "all-linear", "--resume",
    ])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    let full = try runGRPO(["train", "--config", root + "/grpo.yaml", "--max_steps", "4", "--resume"])
    #expect(full.stderr.contains("its use_peft is true, this run's is false"), "\(full.stderr)")
}

/// An open-r1-style recipe, TRL's keys as written, pointed at local files: a dataset folder with
/// train and test splits, a prompt column made a chat with a system prompt, TRL's batch arithmetic,
/// logging, evaluation, saving with rotation, TensorBoard, and keys that do not apply here.
@Test func anOpenR1StyleRecipeRunsUnchanged() throws {
    let root = try toyWorkspace()
    defer {
        if ProcessInfo.processInfo.environment["GRPO_KEEP_TEST_RUN"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }
    let data = root + "/math"
    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
    let train = (1...6).map { #"{"problem": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }
    let test = (7...9).map { #"{"problem": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }
    try train.joined(separator: "\n").write(toFile: data + "/train.jsonl", atomically: true, encoding: .utf8)
    try test.joined(separator: "\n").write(toFile: data + "/test.jsonl", atomically: true, encoding: .utf8)
    let recipe = """
        # Model arguments
        model_name_or_path: \(root)/model
        model_revision: main
        torch_dtype: bfloat16
        attn_implementation: flash_attention_2
        # Data training arguments
        dataset_name: \(data)
        dataset_prompt_column: problem
        system_prompt: "You are a helpful assistant. Answer with the number."
        chat_template: "{% for m in messages %}[{{ m.role }}] {{ m.content }}\\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
        callbacks:
        - push_to_hub_revision
        benchmarks: []
        wandb_project: toy
        # GRPO trainer config
        bf16: false
        use_vllm: false
        do_eval: true
        eval_strategy: steps
        eval_steps: 2
        gradient_accumulation_steps: 2
        gradient_checkpointing: true
        gradient_checkpointing_kwargs:
          use_reentrant: false
        hub_model_id: someone/toy-grpo
        hub_strategy: every_save
        learning_rate: 1.0e-03
        log_completions: true
        log_level: info
        logging_first_step: true
        logging_steps: 2
        logging_strategy: steps
        lr_scheduler_type: cosine_with_min_lr
        lr_scheduler_kwargs:
          min_lr_rate: 0.1
        max_prompt_length: 64
        max_completion_length: 6
        max_steps: -1
        num_generations: 4
        num_train_epochs: 2
        output_dir: \(root)/run
        overwrite_output_dir: true
        per_device_eval_batch_size: 4
        per_device_train_batch_size: 4
        push_to_hub: false
        report_to:
        - tensorboard
        reward_funcs:
        - accuracy
        reward_weights:
        - 1.0
        save_strategy: steps
        save_steps: 2
        save_total_limit: 1
        seed: 42
        temperature: 1.0
        warmup_ratio: 0.1

        """
    try recipe.write(toFile: root + "/recipe.yaml", atomically: true, encoding: .utf8)
    let result = try runGRPO(["train", "--config", root + "/recipe.yaml"])
    #expect(result.status == 0, "\(result.stderr)")
    // 6 prompts, 2 a step (4 x 2 completions in groups of 4), 2 epochs: 6 steps.
    #expect(result.stderr.contains("step 6/6"), "\(result.stderr)")
    #expect(result.stderr.contains("held-out after step 2: accuracy "), "\(result.stderr)")
    // The run's own chat template rendered the system prompt and the problem column.
    #expect(
        result.stderr.contains("[system] You are a helpful assistant. Answer with the number.\n[user] "),
        "\(result.stderr)")
    for key in [
        "torch_dtype", "attn_implementation", "use_vllm", "hub_model_id", "log_level", "do_eval", "callbacks",
        "wandb_project",
    ] {
        #expect(result.stderr.contains("note: \(key) (\(root)/recipe.yaml): not used here"), "\(key)")
    }
    let out = root + "/run"
    let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
    let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    let logged = objects.filter { $0["loss"] != nil }.map { $0["step"] as! Int }
    #expect(logged == [1, 2, 4, 6])  // logging_first_step, then every 2
    // What the steps held, measured: peak RSS, the largest KV-cache wave and kept activations.
    for line in objects where line["loss"] != nil {
        for key in [
            "memory/peak_rss", "memory/kv_cache", "memory/activations", "memory/gradients",
            "memory/optimizer",
        ] {
            #expect((line[key] as? Double ?? 0) > 0, "\(key) in \(line)")
        }
        #expect((line["memory/optimizer"] as? Double) == 2 * (line["memory/gradients"] as? Double ?? -1))
    }
    let evaluated = objects.filter { $0["eval/accuracy"] != nil }.map { $0["step"] as! Int }
    #expect(evaluated == [2, 4, 6])
    #expect(objects.contains { $0["eval/pass@4"] != nil })
    // save_total_limit 1: only the newest checkpoint is left.
    let folders = try FileManager.default.contentsOfDirectory(atPath: out).filter {
        $0.hasPrefix("checkpoint-")
    }
    #expect(folders == ["checkpoint-6"])
    let events = try FileManager.default.contentsOfDirectory(atPath: out + "/runs")
    #expect(events.count == 1 && events[0].hasPrefix("events.out.tfevents."))
    // TRL's resume_from_checkpoint: true continues from the newest checkpoint, here for a third epoch.
    let resumed = try runGRPO([
        "train", "--config", root + "/recipe.yaml", "--resume_from_checkpoint", "true", "--num_train_epochs",
        "3",
        "--overwrite_output_dir", "false",
    ])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("steps 7...9"), "\(resumed.stderr)")
    let after = try FileManager.default.contentsOfDirectory(atPath: out).filter {
        $0.hasPrefix("checkpoint-")
    }
    #expect(after == ["checkpoint-9"])
    let plot = try runGRPO(["plot", out])
    #expect(plot.status == 0, "\(plot.stderr)")
    let svg = try String(contentsOfFile: out + "/plot.svg", encoding: .utf8)
    for title in [
        "reward", "held-out accuracy", "learning rate", "completion length (tokens)", "reward means",
    ] {
        #expect(svg.contains(">\(title)</text>"), "\(title)")
    }
}
