import Foundation
import Rewards

/// The rewards of a run and their weights.
///
/// `rewards` (or TRL's `reward_funcs`) lists each as a name or a mapping of a name and its options;
/// `reward_weights` weighs them. Names and options are checked against the reward
/// registry when read, so a typo is an error naming the key before any model loads.
public struct RewardSettings {
    public var specs: [RewardSpec]
    public var weights: [Double]

    public init(_ v: ConfigValues) throws {
        // open-r1 and TRL call them reward_funcs; either name, not both.
        let trlNames = v.has("reward_funcs") ? v.list("reward_funcs") : nil
        let ours = v.has("rewards") ? v.list("rewards") : nil
        if ours != nil && trlNames != nil {
            throw v.error("reward_funcs", "give rewards or reward_funcs, not both")
        }
        let key = trlNames != nil ? "reward_funcs" : "rewards"
        if let items = trlNames ?? ours {
            guard !items.isEmpty else { throw v.error(key, "needs at least one reward") }
            specs = try items.map { item in
                guard let spec = Self.spec(item) else {
                    throw v.error(key, "each reward is a name or a mapping with 'name', got \(item)")
                }
                return spec
            }
        } else {
            specs = [RewardSpec(name: "accuracy")]
        }
        for spec in specs {
            do {
                _ = try RewardRegistry.kind(named: spec.name).arguments(spec)
            } catch let error as RewardError {
                throw v.error(key, error.description)
            }
        }
        if let given = v.list("reward_weights") {
            weights = try given.map {
                guard let w = ($0 as? NSNumber)?.doubleValue ?? Double("\($0)"), w.isFinite else {
                    throw v.error("reward_weights", "expected numbers, got '\($0)'")
                }
                return w
            }
        } else {
            weights = Array(repeating: 1, count: specs.count)
        }
        if weights.count != specs.count {
            throw v.error("reward_weights", "has \(weights.count) weights for \(specs.count) rewards")
        }
    }

    /// A reward as a config gives it: a name, or a mapping of `name` and options (a list is an
    /// argv); nil for anything else.
    public static func spec(_ item: Any) -> RewardSpec? {
        if let name = item as? String { return RewardSpec(name: name) }
        guard let object = item as? [String: Any], let name = object["name"] as? String else { return nil }
        var spec = RewardSpec(name: name)
        func text(_ value: Any) -> String { (value as? NSNumber)?.stringValue ?? "\(value)" }
        for (option, value) in object where option != "name" {
            if let list = value as? [Any] {
                spec.lists[option] = list.map(text)
            } else {
                spec.options[option] = text(value)
            }
        }
        return spec
    }

    /// The rewards, built; `warn` hears what a reward recovered from.
    public func make(maxCompletionLength: Int, warn: @escaping (String) -> Void = { _ in }) throws
        -> [any Reward]
    {
        try specs.map { try RewardRegistry.make($0, maxCompletionLength: maxCompletionLength, warn: warn) }
    }
}
