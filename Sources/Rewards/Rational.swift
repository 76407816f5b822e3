/// An exact fraction, so that `0.5`, `1/2`, `\frac{2}{4}` and `50%` compare equal without rounding.
///
/// Arithmetic returns nil on Int overflow; callers fall back to Double.
struct Rational: Equatable, Hashable, CustomStringConvertible {
    let numerator: Int
    let denominator: Int  // > 0, coprime with numerator

    init?(_ numerator: Int, _ denominator: Int) {
        guard denominator != 0, numerator != .min, denominator != .min else { return nil }
        let g = Rational.gcd(abs(numerator), abs(denominator))
        let sign = denominator < 0 ? -1 : 1
        self.numerator = sign * numerator / max(g, 1)
        self.denominator = sign * denominator / max(g, 1)
    }

    init(_ integer: Int) {
        numerator = integer
        denominator = 1
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    var doubleValue: Double { Double(numerator) / Double(denominator) }
    var isInteger: Bool { denominator == 1 }
    var description: String { denominator == 1 ? "\(numerator)" : "\(numerator)/\(denominator)" }

    static func + (a: Rational, b: Rational) -> Rational? {
        let (x, o1) = a.numerator.multipliedReportingOverflow(by: b.denominator)
        let (y, o2) = b.numerator.multipliedReportingOverflow(by: a.denominator)
        let (n, o3) = x.addingReportingOverflow(y)
        let (d, o4) = a.denominator.multipliedReportingOverflow(by: b.denominator)
        return o1 || o2 || o3 || o4 ? nil : Rational(n, d)
    }

    static prefix func - (a: Rational) -> Rational { Rational(-a.numerator, a.denominator)! }

    static func - (a: Rational, b: Rational) -> Rational? { a + (-b) }

    static func * (a: Rational, b: Rational) -> Rational? {
        let (n, o1) = a.numerator.multipliedReportingOverflow(by: b.numerator)
        let (d, o2) = a.denominator.multipliedReportingOverflow(by: b.denominator)
        return o1 || o2 ? nil : Rational(n, d)
    }

    static func / (a: Rational, b: Rational) -> Rational? {
        guard b.numerator != 0 else { return nil }
        return a * Rational(b.denominator, b.numerator)!
    }
}

/// A parsed numeric answer: exact when the text allows, else a Double.
enum Number: Equatable {
    case exact(Rational)
    case approximate(Double)

    var doubleValue: Double {
        switch self {
        case .exact(let r): r.doubleValue
        case .approximate(let d): d
        }
    }

    /// Equal as exact fractions, or within a relative 1e-9 when either side is inexact.
    func matches(_ other: Number) -> Bool {
        if case .exact(let a) = self, case .exact(let b) = other { return a == b }
        let (a, b) = (doubleValue, other.doubleValue)
        return abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    }
}
