import Foundation
import SafeTensors
import Testing
import Training

/// `mpirun` on this machine (over loopback), with the flags a root CI machine needs.
private func mpirun(_ ranks: [[String]]) throws -> (status: Int32, stdout: String, stderr: String) {
    var arguments = ["mpirun", "--allow-run-as-root", "--oversubscribe"]
    for (index, rank) in ranks.enumerated() {
        if index > 0 { arguments.append(":") }
        arguments += ["-np", "1"] + rank
    }
    return try runProgram(URL(fileURLWithPath: "/usr/bin/env"), arguments)
}

/// A toy model and prompts whose completions a digit reward splits, under a fresh folder.
private final class DistributedWorkspace {
    let root = NSTemporaryDirectory() + "grpo-mpi-\(UUID().uuidString)"
    var config: String { root + "/grpo.yaml" }

    /// A toy model, 16 prompts and a config whose settings each span the whole batch.
    ///
    /// `batchScaling`: `scale_rewards: batch` (GRPO's; RLOO refuses it). `ppo`: `algorithm: ppo`
    /// with two mini-batches (its own KL and whitening, no GRPO scaling).
    init(batchScaling: Bool = true, ppo: Bool = false) throws {
        try ToyModel.write(
            to: root + "/model", layers: 2, hiddenSize: 32, heads: 2, keyValueHeads: 1, seed: 7)
        try (1...16).map { #"{"prompt": "\#($0)+\#($0)=", "answer": \#($0 * 2)}"# }.joined(separator: "\n")
            .write(toFile: root + "/data.jsonl", atomically: true, encoding: .utf8)
        // Batch scaling, DAPO's token normalizer, a KL and accumulation: each spans the whole batch.
        try """
        model: \(root)/model
        dataset: \(root)/data.jsonl
        rewards: [{name: format, pattern: '.*[0-9].*'}, accuracy]
        num_generations: 4
        per_step_prompts: 4
        gradient_accumulation_steps: 2
        max_completion_length: 8
        learning_rate: 1.0e-3
        lr_scheduler_type: constant
        \(ppo ? "algorithm: ppo\nnum_mini_batches: 2\nkl_coef: 0.05" : batchScaling ? "scale_rewards: batch\nbeta: 0.04" : "beta: 0.04")
        max_steps: 4
        save_steps: 2
        logging_steps: 1
        seed: 3
        """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func train(_ output: String, _ extra: [String] = []) -> [String] {
        [grpoExecutable().path, "train", "--config", config, "--output_dir", root + "/" + output] + extra
    }

    func weights(_ folder: String) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(path: root + "/" + folder + "/model.safetensors")
        return try Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, try file.floats($0)) })
    }

    func metrics(_ folder: String) throws -> [[String: Any]] {
        try String(contentsOfFile: root + "/" + folder + "/metrics.jsonl", encoding: .utf8).split(
            separator: "\n"
        )
        .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// The largest difference between two folders' weights.
    func largestDifference(_ a: String, _ b: String) throws -> Float {
        let (x, y) = (try weights(a), try weights(b))
        return x.keys.map { key in zip(x[key]!, y[key]!).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
    }
}

struct DistributedTests {
    /// Two ranks, each sampling and learning from half of every step's groups, reach the weights one
    /// process reaches from the same batch and seed; and a run saved by two ranks resumes as one.
    @Test func twoRanksTrainAsOneProcessDoes() throws {
        let w = try DistributedWorkspace()
        let single = try runGRPO(Array(w.train("one").dropFirst()))
        try #require(single.status == 0, "\(single.stderr)")
        let pair = try mpirun([w.train("two"), w.train("two")])
        try #require(pair.status == 0, "\(pair.stderr)")
        // One rank reports: the progress line and the closing line once.
        #expect(pair.stdout.components(separatedBy: "trained model:").count == 2, "\(pair.stdout)")

        let update = try w.largestDifference("one", "model")
        let drift = try w.largestDifference("one", "two")
        #expect(update > 1e-4, "the run must move the weights (moved \(update))")
        #expect(drift < update / 100, "two ranks ended \(drift) from one process; the update was \(update)")
        let (one, two) = (try w.metrics("one"), try w.metrics("two"))
        #expect(one.count == 4 && two.count == 4)
        for (a, b) in zip(one, two) {
            // The same groups were sampled and scored: rewards and their spread agree exactly.
            #expect(a["reward"] as? Double == b["reward"] as? Double)
            #expect(a["reward_std"] as? Double == b["reward_std"] as? Double)
            #expect(abs((a["loss"] as! Double) - (b["loss"] as! Double)) < 1e-5)
            #expect(abs((a["kl"] as! Double) - (b["kl"] as! Double)) < 1e-5)
            #expect((b["distributed/bytes_sent"] as? Double ?? 0) > 0)
        }

        // The 2-rank run's checkpoint at step 2, resumed by one process, ends where one process does.
        let resumed = try runGRPO(
            Array(w.train("two", ["--resume-from", w.root + "/two/checkpoint-2"]).dropFirst()))
        try #require(resumed.status == 0, "\(resumed.stderr)")
        let resumeDrift = try w.largestDifference("one", "two")
        #expect(resumeDrift < update / 100, "resumed from ranks: \(resumeDrift) from one process")
    }

    /// Rounds reused over `num_iterations` (a checkpoint mid-round holds every rank's block) and RLOO
    /// with its KL folded into the rewards (whitened over every rank's batch) match one process too,
    /// as do dynamic sampling, whose refill keeps different numbers of groups on each rank, and
    /// all-reduce buckets small enough that each layer's starts while the layers below run.
    @Test(arguments: [
        ["--num_iterations", "2", "--max_steps", "3", "--save_steps", "1"],
        ["--algorithm", "rloo", "--beta", "0.05", "--max_steps", "3"],
        ["--dynamic_sampling", "true", "--max_steps", "3"],
        // PPO's policy and critic buckets, started during their backwards.
        ["--algorithm", "ppo", "--max_steps", "2", "--save_steps", "1", "--ddp_bucket_cap_mb", "0.0001"],
        // Buckets of ~100 bytes: every layer's all-reduce starts during the backward.
        ["--ddp_bucket_cap_mb", "0.0001", "--max_steps", "3"],
    ])
    func twoRanksMatchOneProcessFor(_ settings: [String]) throws {
        let ppo = settings.contains("ppo")
        let w = try DistributedWorkspace(batchScaling: !settings.contains("rloo"), ppo: ppo)
        let single = try runGRPO(Array(w.train("one", settings).dropFirst()))
        try #require(single.status == 0, "\(single.stderr)")
        let pair = try mpirun([w.train("two", settings), w.train("two", settings)])
        try #require(pair.status == 0, "\(pair.stderr)")
        let update = try w.largestDifference("one", "model")
        let drift = try w.largestDifference("one", "two")
        #expect(update > 1e-4 && drift < update / 100, "update \(update), two ranks off by \(drift)")
        if settings.contains("--dynamic_sampling") {
            let (one, two) = (try w.metrics("one"), try w.metrics("two"))
            let rounds = one.map { $0["dynamic_sampling/rounds"] as? Double ?? 0 }
            #expect(rounds.contains { $0 > 1 }, "no step refilled: \(rounds)")
            #expect(two.map { $0["dynamic_sampling/rounds"] as? Double ?? 0 } == rounds)
            #expect(one.map { $0["reward"] as? Double } == two.map { $0["reward"] as? Double })
        }
        if ppo {
            // The critic, trained from its ranks' parts of every micro-batch, ends as one process's.
            let critics = (
                try SafeTensorsFile(path: w.root + "/one/value_model/model.safetensors"),
                try SafeTensorsFile(path: w.root + "/two/value_model/model.safetensors")
            )
            let score = (try critics.0.floats("score.weight"), try critics.1.floats("score.weight"))
            let moved = zip(score.0, score.1).map { abs($0 - $1) }.max() ?? 1
            #expect(moved < update / 100, "the critics' score heads differ by \(moved)")
            let (one, two) = (try w.metrics("one"), try w.metrics("two"))
            for (a, b) in zip(one, two) {
                #expect(a["objective/scores"] as? Double == b["objective/scores"] as? Double)
                #expect(abs((a["loss/value_avg"] as! Double) - (b["loss/value_avg"] as! Double)) < 1e-4)
            }
            // The ranks' checkpoint (policy, critic and both optimizers) resumed by one process.
            let resumed = try runGRPO(
                Array(w.train("two", settings + ["--resume-from", w.root + "/two/checkpoint-1"]).dropFirst()))
            try #require(resumed.status == 0, "\(resumed.stderr)")
            let resumeDrift = try w.largestDifference("one", "two")
            #expect(resumeDrift < update / 100, "PPO resumed from ranks: \(resumeDrift) from one process")
        }
        if settings.contains("--num_iterations") {
            // checkpoint-1 is mid-round: one process resumes it from the ranks' joined round.
            let resumed = try runGRPO(
                Array(w.train("two", settings + ["--resume-from", w.root + "/two/checkpoint-1"]).dropFirst()))
            try #require(resumed.status == 0, "\(resumed.stderr)")
            let resumeDrift = try w.largestDifference("one", "two")
            #expect(resumeDrift < update / 100, "resumed mid-round: \(resumeDrift) from one process")
        }
    }

    /// SFT across two ranks: the mean over both ranks' tokens, the same weights as one process, with
    /// the all-reduce started layer by layer during the backward.
    @Test func twoRanksFineTuneAsOneProcessDoes() throws {
        let w = try DistributedWorkspace()
        try (1...12).map { #"{"prompt": "\#($0)+\#($0)=", "completion": "\#($0 * 2)"}"# }.joined(
            separator: "\n"
        )
        .write(toFile: w.root + "/sft.jsonl", atomically: true, encoding: .utf8)
        func sft(_ output: String) -> [String] {
            [
                grpoExecutable().path, "sft", "--model", w.root + "/model", "--dataset",
                w.root + "/sft.jsonl",
                "--output_dir", w.root + "/" + output, "--per_device_train_batch_size", "4",
                "--learning_rate", "3e-3", "--max_steps", "3", "--save_steps", "100", "--seed", "2",
            ]
        }
        let single = try runGRPO(Array(sft("one").dropFirst()))
        try #require(single.status == 0, "\(single.stderr)")
        // Tiny buckets: each layer's all-reduce starts during the backward.
        let overlapped = sft("two") + ["--ddp_bucket_cap_mb", "0.0001"]
        let pair = try mpirun([overlapped, overlapped])
        try #require(pair.status == 0, "\(pair.stderr)")
        let update = try w.largestDifference("one", "model")
        let drift = try w.largestDifference("one", "two")
        #expect(update > 1e-4 && drift < update / 100, "update \(update), two ranks off by \(drift)")
        let (one, two) = (try w.metrics("one"), try w.metrics("two"))
        for (a, b) in zip(one, two) {
            #expect(abs((a["loss"] as! Double) - (b["loss"] as! Double)) < 1e-5)
            #expect(a["num_tokens"] as? Double == b["num_tokens"] as? Double)
        }
    }

    /// A rank that cannot start, or that dies mid-run, ends the job with a clear message; nothing hangs.
    @Test func aFailingRankEndsTheJob() throws {
        let w = try DistributedWorkspace()
        let refused = try mpirun([w.train("bad"), w.train("bad", ["--learning_rat", "1"])])
        #expect(refused.status != 0)
        #expect(
            refused.stderr.contains("rank 1 of 2") && refused.stderr.contains("learning_rat"),
            "\(refused.stderr)")

        // Rank 1 killed with SIGKILL while the job trains: mpirun ends rank 0 too.
        let metrics = w.root + "/long/metrics.jsonl"
        // Rank 1's command line alone (anchored: mpirun's own holds the same words).
        let pattern =
            "^" + grpoExecutable().path
            + " train .*output_dir \(w.root)/long --max_steps 100000 --report_to none"
        let killer = Thread {
            for _ in 0..<600 {
                if FileManager.default.fileExists(atPath: metrics) { break }
                usleep(100_000)
            }
            let ranks = Process()
            ranks.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            ranks.arguments = ["-KILL", "-f", "--", pattern]
            try? ranks.run()
            ranks.waitUntilExit()
        }
        killer.start()
        let start = Date()
        let killed = try mpirun([
            w.train("long", ["--max_steps", "100000"]),
            w.train("long", ["--max_steps", "100000", "--report_to", "none"]),
        ])
        #expect(killed.status != 0)
        #expect(Date().timeIntervalSince(start) < 200)
        #expect(
            killed.stderr.contains("signal 9") || killed.stderr.contains("Killed"),
            "\(killed.stderr)\n\(killed.stdout)")
    }
}
