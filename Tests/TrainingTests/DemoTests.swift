import Foundation
import Testing

@testable import Training

struct DemoTests {
    /// Default settings writing to a new temporary folder (the caller removes it).
    private func scratchSettings() -> DemoSettings {
        var settings = DemoSettings()
        settings.outputDir = NSTemporaryDirectory() + "grpo-demo-\(UUID().uuidString)"
        return settings
    }

    /// A shortened, seeded `grpo demo`, then PPO on the same cold start.
    ///
    /// The full cold start and 30 of the 40 GRPO steps: GRPO must raise held-out accuracy over the
    /// SFT model's, by learning to work the problems out. Then PPO, from
    /// the same SFT model (a critic initialised from it, 30 steps of 2 passes), must too.
    @Test func grpoAndPPORaiseHeldOutAccuracyAfterSFT() throws {
        var settings = scratchSettings()
        defer { try? FileManager.default.removeItem(atPath: settings.outputDir) }
        settings.grpoSteps = 30
        settings.evalSteps = 30
        settings.heldOutExamples = 100
        var stages: [String] = []
        let preparation = try prepareDemo(settings) { event in
            if case .stage(let text) = event { stages.append(text) }
        }
        let report = try runDemoRL(preparation, settings) { event in
            if case .stage(let text) = event { stages.append(text) }
        }
        let sft = try #require(report.evaluation("sft"))
        let grpo = try #require(report.evaluation("rl"))
        let base = try #require(report.evaluation("base"))
        #expect(stages.count == 3)
        // Cold-start SFT teaches the format and both ways of answering, 40% of its examples worked.
        #expect(base.format == 0 && sft.format > 0.9)
        #expect(sft.worked > 0.2 && sft.worked < 0.6, "worked share after SFT \(sft.worked)")
        // GRPO finds that working the problem out pays, and held-out accuracy rises with it. By step 30
        // the full demo has gained 25-40 points sampled and 45-60 greedy on every seed measured; a model
        // that learned nothing gains nothing.
        #expect(grpo.worked > sft.worked + 0.3, "worked share \(sft.worked) -> \(grpo.worked)")
        #expect(
            grpo.sampledAccuracy > sft.sampledAccuracy + 0.15,
            "sampled accuracy \(sft.sampledAccuracy) -> \(grpo.sampledAccuracy)")
        #expect(grpo.accuracy > sft.accuracy + 0.2, "greedy accuracy \(sft.accuracy) -> \(grpo.accuracy)")
        let gain = try #require(DemoGain(seed: settings.seed, report: report))
        #expect(abs(gain.greedy - (grpo.accuracy - sft.accuracy) * 100) < 1e-9)
        #expect(report.trainingCurve.count == settings.grpoSteps)
        let first = report.trainingCurve.prefix(10).map(\.accuracy).reduce(0, +) / 10
        let last = report.trainingCurve.suffix(10).map(\.accuracy).reduce(0, +) / 10
        #expect(last > first, "training accuracy \(first) -> \(last)")
        let svg = try String(contentsOfFile: report.plotPath, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
        for file in [
            "grpo/model.safetensors", "grpo/metrics.jsonl", "sft/metrics.jsonl", "data/held_out.jsonl",
        ] {
            #expect(
                FileManager.default.fileExists(atPath: settings.outputDir + "/" + file), "missing \(file)")
        }

        // PPO from the same cold start: the full 40-step run gained 36 points sampled and 47 greedy
        // (seed 1); by step 30 of 2 passes a critic-trained policy that learned must clear the same
        // bars. (At step 20 it cleared them on an AMD AVX2 machine and fell short on an Intel AVX-512
        // one, 0.49 -> 0.69 greedy: the CPU's rounding moves the trajectory.)
        var ppoSettings = settings
        ppoSettings.grpoSteps = 30
        ppoSettings.evalSteps = 30
        ppoSettings.rlKeys = ["algorithm": "ppo", "num_ppo_epochs": "2"]
        let ppoReport = try runDemoRL(preparation, ppoSettings)
        let ppo = try #require(ppoReport.evaluation("rl"))
        #expect(ppoReport.algorithm == "ppo")
        #expect(ppo.worked > sft.worked + 0.3, "PPO: worked share \(sft.worked) -> \(ppo.worked)")
        #expect(
            ppo.sampledAccuracy > sft.sampledAccuracy + 0.15,
            "PPO: sampled accuracy \(sft.sampledAccuracy) -> \(ppo.sampledAccuracy)")
        #expect(ppo.accuracy > sft.accuracy + 0.2, "PPO: greedy accuracy \(sft.accuracy) -> \(ppo.accuracy)")
        #expect(
            FileManager.default.fileExists(atPath: settings.outputDir + "/ppo/value_model/model.safetensors"))
    }

    @Test func coldStartMixesWorkedAndDirectAnswers() throws {
        var settings = scratchSettings()
        defer { try? FileManager.default.removeItem(atPath: settings.outputDir) }
        settings.sftExamples = 10
        settings.directFraction = 0.3
        settings.layers = 1
        let files = try writeDemoFiles(settings)
        let answers = try String(contentsOfFile: files.sft, encoding: .utf8).split(separator: "\n").map {
            String($0)
        }
        #expect(answers.count == 10)
        #expect(answers.filter { $0.contains("<think></think>") }.count == 3)
        #expect(worksTheProblem("<think>2+3=5</think><answer>5</answer>"))
        #expect(!worksTheProblem("<think> </think><answer>5</answer>"))
        #expect(!worksTheProblem("<answer>5</answer>"))
        #expect(!worksTheProblem("</think>x<think>"))
    }

    @Test func problemsAreDistinctWorkedAndReproducible() {
        let task = ArithmeticTask()
        let problems = task.problems(count: 300, seed: 4)
        #expect(problems == task.problems(count: 300, seed: 4))
        #expect(Set(problems.map(\.question)).count == 300)
        let held = Set(problems.prefix(50).map(\.question))
        #expect(
            task.problems(count: 200, seed: 5, excluding: held).allSatisfy { !held.contains($0.question) })
        for problem in problems {
            // Replaying the steps gives the answer, every running total stays in range.
            var total = Int(problem.question.prefix { $0.isNumber })!
            for step in problem.steps {
                let parts = step.split(separator: "=")
                let result = Int(parts[1])!
                #expect(task.totals.contains(result))
                let expression = String(parts[0])
                let op = expression.dropFirst(String(total).count).first!
                let operand = Int(expression.dropFirst(String(total).count + 1))!
                #expect(result == (op == "+" ? total + operand : total - operand), "\(problem.question)")
                total = result
            }
            #expect(total == problem.answer)
            #expect(problem.solution.hasPrefix("<think>") && problem.solution.hasSuffix("</answer>"))
            #expect(problem.directSolution == "<think></think><answer>\(problem.answer)</answer>")
        }
    }

    @Test func seedListsParseNumbersAndRanges() {
        #expect(parseSeedList("1-5") == [1, 2, 3, 4, 5])
        #expect(parseSeedList("1,3,8") == [1, 3, 8])
        #expect(parseSeedList("1-3,10, 2") == [1, 2, 3, 10])
        #expect(parseSeedList("7") == [7])
        for bad in ["", "5-1", "1,,2", "a", "1-2-3", "-1", "1-", "0-5000", "1.5"] {
            #expect(parseSeedList(bad) == nil, "'\(bad)' should be refused")
        }
    }
}
