import Foundation

/// Decides whether rewards that wait on other processes (`Reward.runsAlongside`) score during the
/// log-prob passes: only where that pays.
///
/// Scoring alongside hides the rewards' wall time but takes their CPU time from the passes' matmuls.
/// It pays when the rewards mostly wait (programs that sleep or time out, a remote service), not when
/// their programs keep the cores busy (on 2 cores, 32 Python start-ups slow the reference pass by
/// about what they save). So a round scored first measures how busy the machine was meanwhile
/// (/proc/stat): under half busy, the next rounds score alongside; every `remeasureEvery` rounds one
/// scores first again to re-measure. The rounds come out the same either way.
struct RewardOverlap {
    enum Mode: Equatable {
        case never, always, measured
    }

    var mode: Mode
    /// The last measurement's verdict; nil before the first.
    private(set) var pays: Bool?
    private var roundsSinceMeasure = 0
    let remeasureEvery = 20
    /// The busy fraction below which scoring alongside pays.
    let busyLimit = 0.5

    /// `GRPO_REWARDS_ALONGSIDE`: 0 never, 1 always, unset measured.
    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        switch environment["GRPO_REWARDS_ALONGSIDE"] {
        case "0": mode = .never
        case "1": mode = .always
        default: mode = .measured
        }
    }

    /// Whether this round scores alongside; false means it scores first (and is measured).
    mutating func alongside() -> Bool {
        switch mode {
        case .never: return false
        case .always: return true
        case .measured:
            guard let pays, roundsSinceMeasure < remeasureEvery else { return false }
            roundsSinceMeasure += 1
            return pays
        }
    }

    /// Records how busy the machine was (0 to 1) while a round's rewards scored first.
    mutating func record(busy: Double) {
        pays = busy < busyLimit
        roundsSinceMeasure = 0
    }
}

/// The machine's CPU time counters (all cores, in clock ticks): busy and total, from /proc/stat.
///
/// Nil where there is none.
func cpuTicks() -> (busy: Double, total: Double)? {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
        let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
    else { return nil }
    let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard fields.count >= 5 else { return nil }
    let total = fields.prefix(8).reduce(0, +)
    // idle and iowait are the 4th and 5th counters.
    return (total - fields[3] - fields[4], total)
}

/// The share of the machine busy between two `cpuTicks` readings; nil when no time passed.
func busyFraction(from start: (busy: Double, total: Double), to end: (busy: Double, total: Double)) -> Double?
{
    let total = end.total - start.total
    return total > 0 ? (end.busy - start.busy) / total : nil
}
