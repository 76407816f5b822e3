import Foundation
import Models
import Tokenizers

extension ConfigValues {
    /// LoRA's settings from TRL's `ModelConfig` keys: `use_peft`, `lora_r`, `lora_alpha`,
    /// `lora_dropout`, `lora_target_modules` (names, a comma list, or `all-linear`), `use_rslora`.
    ///
    /// Nil when LoRA is off: `use_peft: true`, or any `lora_*` key without `use_peft: false`, turns
    /// it on (so `--lora_r 16` alone does). Defaults are TRL's (`lora_dropout` 0.05).
    public func loraSettings() throws -> LoRASettings? {
        let keys = ["lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_rslora"]
        let given = keys.filter { has($0) }
        let on = has("use_peft") ? try bool("use_peft") : !given.isEmpty
        var settings = LoRASettings()
        settings.rank = try int("lora_r")
        settings.alpha = try double("lora_alpha")
        settings.dropout = try bool("disable_dropout") ? 0 : try double("lora_dropout")
        settings.useRSLoRA = try bool("use_rslora")
        _ = try choiceName("lora_task_type")
        if let modules = list("lora_target_modules") {
            settings.targetModules = modules.map { "\($0)".trimmingCharacters(in: .whitespaces) }
        }
        guard on else { return nil }
        guard settings.rank >= 1, settings.rank <= 4096 else {
            throw error("lora_r", "must be from 1 to 4096")
        }
        guard settings.alpha > 0 else { throw error("lora_alpha", "must be positive") }
        guard settings.dropout >= 0, settings.dropout < 1 else {
            throw error("lora_dropout", "must be a probability in [0, 1)")
        }
        for name in settings.targetModules ?? []
        where name != "all-linear" && !LoRASettings.projectionNames.contains(name) {
            throw error(
                "lora_target_modules",
                "expected module names among \(LoRASettings.projectionNames.joined(separator: ", ")) or all-linear, got '\(name)'"
            )
        }
        return settings
    }
}

extension LoRASettings {
    /// The keys and values a run's summary records.
    var summary: [String: Any] {
        [
            "use_peft": true, "lora_r": rank, "lora_alpha": alpha, "lora_dropout": dropout,
            "lora_target_modules": resolvedTargets, "use_rslora": useRSLoRA,
        ]
    }
}

/// The summary keys every trainer's config shares: the template variables (as JSON
/// text, which TRL also accepts), the precision asked for and the adapter settings.
func runSummary(
    chatTemplateKwargs: [String: Value], precision: PrecisionSetting, lora: LoRASettings?,
    adapter: String?
)
    -> [String: Any]
{
    let kwargs = Object(chatTemplateKwargs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    let base: [String: Any] = [
        "chat_template_kwargs": Value.object(kwargs).jsonText,
        "use_peft": lora != nil || adapter != nil, "adapter": adapter ?? NSNull(),
        "precision": precision.rawValue,
    ]
    return base.merging(lora?.summary ?? [:]) { _, new in new }
}
