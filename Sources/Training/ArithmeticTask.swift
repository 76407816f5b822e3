import Foundation
import Tensors

/// A generated, verifiable task for the demo: chains of additions and subtractions of small numbers,
/// worked step by step in DeepSeek-R1's format.
///
/// Chains are long (5 to 7 numbers) and totals small (0 to 20): each step is one of a few hundred
/// facts a 4-layer model learns reliably, while the whole chain at once is beyond it, so working
/// the problem out pays.
///
///     let problem = ArithmeticTask().problems(count: 1, seed: 7)[0]
///     problem.question   // "7+5-3+8-9="
///     problem.solution   // "<think>7+5=12 12-3=9 9+8=17 17-9=8</think><answer>8</answer>"
///     problem.directSolution   // "<think></think><answer>8</answer>"
public struct ArithmeticTask: Sendable {
    /// How many numbers a problem chains (inclusive range).
    public var operands: ClosedRange<Int> = 5...7
    /// The range each number is drawn from.
    public var numbers: ClosedRange<Int> = 1...9
    /// Running totals stay inside this range (a subtraction that would leave it becomes an addition).
    public var totals: ClosedRange<Int> = 0...20

    public init() {}

    /// One problem: the question, its worked solution and the answer.
    public struct Problem: Sendable, Equatable {
        public var question: String
        public var steps: [String]
        public var answer: Int

        /// The R1-format solution: the steps in `<think>`, the result in `<answer>`.
        public var solution: String {
            "<think>" + steps.joined(separator: " ") + "</think><answer>\(answer)</answer>"
        }

        /// The answer without working: an empty think block, as in Qwen3's non-thinking mode.
        public var directSolution: String { "<think></think><answer>\(answer)</answer>" }
    }

    /// `count` distinct problems drawn under `seed`, none of whose questions is in `excluding`.
    public func problems(count: Int, seed: UInt64, excluding: Set<String> = []) -> [Problem] {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x7F4A_7C15)
        var seen = excluding
        var result: [Problem] = []
        var attempts = 0
        while result.count < count && attempts < count * 100 {
            attempts += 1
            let problem = draw(&rng)
            if seen.insert(problem.question).inserted { result.append(problem) }
        }
        return result
    }

    func draw(_ rng: inout SplitMix64) -> Problem {
        func uniform(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(rng.next() % UInt64(range.count))
        }
        let k = uniform(operands)
        var total = uniform(numbers)
        var question = "\(total)"
        var steps: [String] = []
        for _ in 1..<k {
            let n = uniform(numbers)
            var plus = rng.next() % 2 == 0
            if !totals.contains(plus ? total + n : total - n) { plus.toggle() }
            let next = plus ? total + n : total - n
            let op = plus ? "+" : "-"
            question += "\(op)\(n)"
            steps.append("\(total)\(op)\(n)=\(next)")
            total = next
        }
        return Problem(question: question + "=", steps: steps, answer: total)
    }
}
