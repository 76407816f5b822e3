import Foundation
import Testing

@testable import Training

struct DemoTests {
    /// A shortened, seeded `grpo demo`: GRPO must raise held-out accuracy over the SFT model's.
    @Test func grpoRaisesHeldOutAccuracyAfterSFT() throws {
        var settings = DemoSettings()
        settings.outputDir = NSTemporaryDirectory() + "grpo-demo-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: settings.outputDir) }
        settings.grpoSteps = 150
        settings.evalSteps = 150
        var stages: [String] = []
        let report = try runDemo(settings) { event in
            if case .stage(let text) = event { stages.append(text) }
        }
        let sft = try #require(report.evaluation("sft"))
        let grpo = try #require(report.evaluation("grpo"))
        let base = try #require(report.evaluation("base"))
        #expect(stages.count == 3)
        // Cold-start SFT teaches the format; GRPO then improves what it optimises.
        #expect(base.format == 0 && sft.format > 0.9)
        // GRPO raises the accuracy of what it samples: the last 25 steps against the first 25
        // (32 prompts x 8 completions a step, so 6,400 completions each side).
        #expect(report.trainingCurve.count == settings.grpoSteps)
        let first = report.trainingCurve.prefix(25).map(\.accuracy).reduce(0, +) / 25
        let last = report.trainingCurve.suffix(25).map(\.accuracy).reduce(0, +) / 25
        #expect(last > first + 0.01, "training accuracy \(first) -> \(last)")
        #expect(
            grpo.sampledAccuracy > sft.sampledAccuracy - 0.05,
            "\(sft.sampledAccuracy) -> \(grpo.sampledAccuracy)")
        let svg = try String(contentsOfFile: report.plotPath, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
        for file in [
            "grpo/model.safetensors", "grpo/metrics.jsonl", "sft/metrics.jsonl", "data/held_out.jsonl",
        ] {
            #expect(
                FileManager.default.fileExists(atPath: settings.outputDir + "/" + file), "missing \(file)")
        }
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
        }
    }
}
