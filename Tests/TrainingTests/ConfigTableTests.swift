import Foundation
import Testing

@testable import Training

/// Config values with a model folder (any existing one) and a dataset path, plus `entries`.
private func values(_ entries: [String: Any], source: String = "recipe.yaml") -> ConfigValues {
    let values = ConfigValues()
    values.merge(["model": NSTemporaryDirectory(), "dataset": "train.jsonl"], source: "test")
    values.merge(entries, source: source)
    return values
}

/// TRL 1.16's fields and defaults (scripts/make_config_fixtures.py).
private func trlKeys() throws -> [String: [String: Any]] {
    let fixture = try trainingFixture("trl_keys.json") as! [String: Any]
    #expect(fixture["trl_version"] as? String == "1.16.0")
    return fixture.compactMapValues { $0 as? [String: Any] }
}

struct ConfigTableTests {
    @Test(arguments: [("grpo", "GRPOConfig"), ("sft", "SFTConfig")])
    func everyTRLKeyIsHonouredOrNoted(trainer: String, config: String) throws {
        let fixture = try trlKeys()
        let table = Set((trainer == "grpo" ? ConfigTable.grpo : ConfigTable.sft).map(\.name))
        var fields = fixture[config]!
        for extra in ["ModelConfig", "ScriptArguments"] { fields.merge(fixture[extra]!) { a, _ in a } }
        for (name, trlDefault) in fields.sorted(by: { $0.key < $1.key }) where !table.contains(name) {
            let noted = ConfigTable.noted.first { $0.matches(name) }
            #expect(noted != nil, "\(config).\(name) is neither in the \(trainer) table nor noted")
            if let only = noted?.onlyValue {
                // Accepted at TRL's own default, so a recipe that spells the defaults out runs.
                #expect(ConfigValues.canonical(trlDefault) == only, "\(name): TRL's default \(trlDefault)")
            }
        }
    }

    @Test(arguments: [("grpo", "GRPOConfig"), ("sft", "SFTConfig")])
    func aRecipeOfEveryTRLDefaultRuns(trainer: String, config: String) throws {
        let fixture = try trlKeys()
        var recipe = fixture[config]!
        for extra in ["ModelConfig", "ScriptArguments"] { recipe.merge(fixture[extra]!) { a, _ in a } }
        // The keys a run has to name; TRL's defaults for them are None.
        for key in ["output_dir", "model_name_or_path", "dataset_name"] { recipe[key] = nil }
        let v = values(recipe)
        if trainer == "grpo" {
            let settings = try GRPOConfig(v)
            // TRL's arithmetic: 8 completions per device and step, groups of 8.
            #expect(settings.perStepPrompts == 1)
            #expect(settings.schedule.maxSteps == -1 && settings.schedule.numTrainEpochs == 3)
            #expect(settings.notes.contains { $0.hasPrefix("use_vllm (recipe.yaml): not used here") })
            #expect(settings.notes.contains { $0.hasPrefix("hub_strategy") })
        } else {
            let settings = try SFTConfig(v)
            #expect(settings.perDeviceTrainBatchSize == 8)
            #expect(settings.notes.contains { $0.hasPrefix("dataset_num_proc") } == false)
        }
    }

    @Test(arguments: ["grpo", "sft"])
    func everyTableKeyIsReadAndHelped(trainer: String) throws {
        let v = values([:])
        let sections = trainer == "grpo" ? ConfigTable.grpoSections : ConfigTable.sftSections
        if trainer == "grpo" { _ = try GRPOConfig(v) } else { _ = try SFTConfig(v) }
        let names = sections.flatMap(\.keys).map(\.name)
        #expect(Set(names).count == names.count, "a key is in the table twice")
        #expect(Set(names).subtracting(v.touched).isEmpty, "never read: \(Set(names).subtracting(v.touched))")
        let help = ConfigTable.help(sections)
        for key in sections.flatMap(\.keys) {
            #expect(
                help.contains("  \(key.name): \(key.typeLabel), default \(key.defaultLabel)\n"), "\(key.name)"
            )
        }
    }

    @Test func theSummaryRecordsWhatEachKeyResolvedTo() throws {
        let settings = try GRPOConfig(values(["learning_rate": "3e-6", "bf16": true]))
        #expect(settings.summary["learning_rate"] as? Double == 3e-6)
        #expect(settings.summary["num_generations"] as? Int == 8)
        #expect(settings.summary["beta"] as? Double == 0)
        #expect(settings.summary["precision"] as? String == "bf16")
        #expect(settings.summary["trainer"] as? String == "grpo")
        #expect(settings.summary["max_prompt_length"] is NSNull)
    }

    @Test func keysAskingForWhatIsNotHereAreRefused() throws {
        #expect {
            _ = try GRPOConfig(values(["use_dora": true]))
        } throws: { error in
            "\(error)".contains("use_dora: true is not offered here: DoRA adapters are not offered")
        }
        #expect(
            try GRPOConfig(values(["importance_sampling_level": "sequence"])).importanceSamplingLevel
                == .sequence)
        #expect(try GRPOConfig(values([:])).useBiasCorrectionKL)  // TRL 1.16's default
        #expect(throws: ConfigError.self) { _ = try GRPOConfig(values(["delta": 1.1])) }
        #expect(throws: ConfigError.self) { _ = try GRPOConfig(values(["push_to_hub": true])) }
        #expect(throws: ConfigError.self) { _ = try GRPOConfig(values(["fp16": true])) }
        #expect(throws: ConfigError.self) { _ = try SFTConfig(values(["packing": true])) }
        #expect(throws: ConfigError.self) { _ = try GRPOConfig(values(["optim": "sgd"])) }
        // Accepted with a note at any value: infrastructure that does not exist here.
        let settings = try GRPOConfig(
            values(["vllm_mode": "server", "deepspeed": "zero3.json", "report_to": "wandb"]))
        #expect(settings.notes.count == 3, "\(settings.notes)")
        #expect(settings.notes.contains { $0.contains("report_to (recipe.yaml): 'wandb' is not used here") })
    }

    @Test func trlsBatchArithmeticGivesPromptsPerStep() throws {
        func prompts(_ entries: [String: Any]) throws -> Int {
            try GRPOConfig(values(entries)).perStepPrompts
        }
        #expect(try prompts([:]) == 4)
        #expect(try prompts(["per_device_train_batch_size": 8, "num_generations": 4]) == 2)
        #expect(
            try prompts([
                "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4, "num_generations": 8,
            ])
                == 4)
        #expect(try prompts(["generation_batch_size": 16, "num_generations": 4]) == 4)
        #expect(
            try prompts([
                "per_device_train_batch_size": 4, "steps_per_generation": 2, "gradient_accumulation_steps": 2,
            ])
                == 1)
        for bad: [String: Any] in [
            ["per_device_train_batch_size": 6, "num_generations": 4],
            ["per_device_train_batch_size": 8, "generation_batch_size": 32],
            ["per_device_train_batch_size": 8, "steps_per_generation": 4],
            ["generation_batch_size": 16, "steps_per_generation": 2],
            ["per_device_train_batch_size": 8, "per_step_prompts": 3],
        ] {
            #expect(throws: ConfigError.self, "\(bad)") { _ = try GRPOConfig(values(bad)) }
        }
    }

    @Test func rewardFuncsAndScaleRewardsTakeTRLsSpellings() throws {
        let settings = try GRPOConfig(
            values(["reward_funcs": ["accuracy", "format"], "scale_rewards": false]))
        #expect(settings.rewards.map(\.name) == ["accuracy", "format"])
        #expect(settings.scaleRewards == .none)
        #expect(try GRPOConfig(values(["scale_rewards": "true"])).scaleRewards == .group)
        #expect(throws: ConfigError.self) {
            _ = try GRPOConfig(values(["reward_funcs": ["a"], "rewards": ["b"]]))
        }
    }

    @Test func warmupBelowOneIsAFractionAndSchedulesTakeTheirKwargs() throws {
        let fraction = try GRPOConfig(values(["warmup_steps": 0.1, "max_steps": 50])).optimizer
        #expect(fraction.warmup(totalSteps: 50) == 5)
        let steps = try GRPOConfig(values(["warmup_steps": 7])).optimizer
        #expect(steps.warmup(totalSteps: 50) == 7)
        let minimum = try GRPOConfig(
            values(["lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": ["min_lr_rate": 0.1]])
        ).optimizer
        #expect(abs(minimum.learningRate(step: 10, totalSteps: 10) - 1e-7) < 1e-15)
        #expect(throws: ConfigError.self) {
            _ = try GRPOConfig(values(["lr_scheduler_type": "cosine_with_min_lr"]))
        }
        #expect(throws: ConfigError.self) {
            _ = try GRPOConfig(values(["warmup_steps": 3, "warmup_ratio": 0.1]))
        }
    }

    @Test func aDatasetFolderGivesItsSplitFiles() throws {
        let root = NSTemporaryDirectory() + "grpo-dataset-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        FileManager.default.createFile(atPath: root + "/train.jsonl", contents: Data())
        FileManager.default.createFile(atPath: root + "/data/test.json", contents: Data())
        let v = ConfigValues()
        v.merge(
            [
                "model": NSTemporaryDirectory(), "dataset_name": root, "eval_strategy": "steps",
                "eval_steps": 5,
            ],
            source: "recipe.yaml")
        let settings = try GRPOConfig(v)
        #expect(settings.dataset == root + "/train.jsonl")
        #expect(settings.evaluation?.dataset == root + "/data/test.json")
        let missing = ConfigValues()
        missing.merge(
            ["model": NSTemporaryDirectory(), "dataset": root, "dataset_train_split": "dev"], source: "r")
        #expect { _ = try GRPOConfig(missing) } throws: { error in
            "\(error)".contains("dataset: is a folder without a 'dev' split: looked for dev.jsonl")
        }
        #expect(throws: ConfigError.self) {
            _ = try GRPOConfig(values(["eval_strategy": "steps"]))  // no held-out prompts anywhere
        }
    }
}

struct ScheduleTests {
    @Test func theRunsLengthAndIntervalsFollowTransformers() {
        var schedule = RunSchedule()
        #expect(schedule.totalSteps(stepsPerEpoch: 10.5) == 32)  // 3 epochs, rounded up
        schedule.maxSteps = 7
        #expect(schedule.totalSteps(stepsPerEpoch: 10.5) == 7)
        #expect(RunSchedule.interval(0.25, total: 10) == 3)
        #expect(RunSchedule.interval(4, total: 10) == 4)
        schedule.saveSteps = 3
        schedule.loggingSteps = 2
        schedule.loggingFirstStep = true
        let resolved = schedule.resolved(total: 7)
        #expect((1...7).filter { resolved.saves(step: $0, endsEpoch: false) } == [3, 6, 7])
        #expect((1...7).filter { resolved.logs(step: $0, endsEpoch: false) } == [1, 2, 4, 6, 7])
        schedule.saveStrategy = .epoch
        #expect((1...7).filter { schedule.resolved(total: 7).saves(step: $0, endsEpoch: $0 == 4) } == [4, 7])
        schedule.saveStrategy = .no
        #expect((1...7).filter { schedule.resolved(total: 7).saves(step: $0, endsEpoch: true) }.isEmpty)
        #expect(ResolvedSchedule.endsEpoch(1.0, after: 0.75))
        #expect(!ResolvedSchedule.endsEpoch(1.5, after: 1.25))
    }

    @Test func loggedMetricsAreMeansOverTheWindowAndTotalsTheLatest() {
        var window = MetricsWindow()
        window.add(["loss": 1, "reward": 0.5, "learning_rate": 1e-6, "kl": .nan])
        window.add(["loss": 3, "learning_rate": 2e-6, "kl": 0.5, "memory/peak_rss": 7])
        window.add(["memory/peak_rss": 5])
        let line = window.take()
        #expect(line["memory/peak_rss"] == 7)  // the window's peak
        #expect(
            line["loss"] == 2 && line["reward"] == 0.5 && line["learning_rate"] == 2e-6 && line["kl"] == 0.5)
        #expect(window.isEmpty)
    }

    @Test func rotationKeepsTheNewestAndTheJustSaved() throws {
        let root = NSTemporaryDirectory() + "grpo-rotate-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for step in [2, 4, 6, 8] {
            try FileManager.default.createDirectory(
                atPath: "\(root)/checkpoint-\(step)", withIntermediateDirectories: true)
            FileManager.default.createFile(
                atPath: "\(root)/checkpoint-\(step)/trainer_state.json", contents: Data())
        }
        // An incomplete folder is neither counted nor deleted.
        try FileManager.default.createDirectory(
            atPath: "\(root)/checkpoint-10", withIntermediateDirectories: true)
        let removed = Checkpoint.rotate(outputDir: root, keep: 2, protecting: "\(root)/checkpoint-4")
        #expect(removed == ["\(root)/checkpoint-2", "\(root)/checkpoint-6"])
        let left = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        #expect(left == ["checkpoint-10", "checkpoint-4", "checkpoint-8"])
        // A rotation stopped mid-delete leaves a hidden folder; the next run's lock clears it.
        try FileManager.default.createDirectory(
            atPath: "\(root)/.removing-checkpoint-6", withIntermediateDirectories: true)
        let lock = try OutputLock(outputDir: root, resuming: true, overwrite: false)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/.removing-checkpoint-6"))
        _ = lock
    }

    @Test func rewardHackingIsWhenHeldOutFallsAsTrainingRewardRises() {
        let rewards = (1...20).map { (step: $0, reward: Double($0) / 20) }
        let first = HeldOutMeasurement(step: 10, accuracy: 0.6, completions: 400)
        let fell = HeldOutMeasurement(step: 20, accuracy: 0.45, completions: 400)
        #expect(
            rewardHackingWarning(evaluations: [first], now: fell, trainRewards: rewards)?.contains(
                "reward hacking") == true)
        // Within noise: a 2-point drop on 50 completions.
        let noisy = HeldOutMeasurement(step: 20, accuracy: 0.58, completions: 50)
        #expect(rewardHackingWarning(evaluations: [first], now: noisy, trainRewards: rewards) == nil)
        // Training reward falling too: not hacking, just getting worse.
        let falling = rewards.map { (step: $0.step, reward: 1 - $0.reward) }
        #expect(rewardHackingWarning(evaluations: [first], now: fell, trainRewards: falling) == nil)
        #expect(rewardHackingWarning(evaluations: [], now: fell, trainRewards: rewards) == nil)
    }
}

struct TensorBoardTests {
    @Test func eventFilesAreTheBytesTensorBoardWrites() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tensorboard/events.out.tfevents.1700000000.fixture")
        let expected = try Data(contentsOf: fixture)
        let folder = NSTemporaryDirectory() + "grpo-tb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The fixture's wall times, in order: the file version, a resumed run's restart at step 1,
        // then one per event.
        var times = [1_700_000_000.5, 1_700_000_000.75, 1_700_000_001.25, 1_700_000_002.0, 1_700_000_003.5][
            ...]
        do {
            let writer = try TensorBoardWriter(folder: folder, purgeFrom: 1) { times.popFirst()! }
            try writer.add(["reward": 1.5, "loss": 0.25, "rewards/accuracy/mean": 0.75], step: 1)
            try writer.add(["eval/pass@4": 1.0, "eval/accuracy": 0.5, "ignored": .nan], step: 2)
            try writer.add(["learning_rate": 1e-6, "kl": -0.003125], step: 10)
            #expect(try Data(contentsOf: URL(fileURLWithPath: writer.path)) == expected)
        }
        #expect(TensorBoardWriter.crc32c(Array("123456789".utf8)) == 0xE306_9283)  // CRC-32C's check value
    }
}
