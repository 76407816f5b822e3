import Models

extension ConfigValues {
    /// `precision: float32 | bf16 | auto`, or TRL's `bf16: true` (`bf16: false` is float32); the
    /// two keys must agree when both are given.
    public func precisionSetting() throws -> PrecisionSetting {
        if try bool("fp16") {
            throw error(
                "fp16", "float16 matmuls are not offered on CPUs; use bf16: true (or precision: bf16)")
        }
        let trlBF16 = has("bf16") ? try bool("bf16") : nil
        var precision: PrecisionSetting = try choice("precision")
        if !has("precision") && trlBF16 == true { precision = .bf16 }
        if let trlBF16, has("precision"), (precision == .bf16) != trlBF16, precision != .auto {
            throw error(
                "precision",
                "is \(precision.rawValue) but bf16 is \(trlBF16) (\(source("bf16"))); give one of the two")
        }
        return precision
    }
}

/// The precision a trainer runs `setting` at, telling `warn` once when bf16 cannot run here.
func resolvedPrecision(_ setting: PrecisionSetting, warn: (String) -> Void) -> LinearPrecision {
    let (precision, note) = setting.resolved()
    if let note { warn(note) }
    return precision
}
