import Foundation

/// Slow, obviously correct definitions in Double; the fast kernels are tested against these.
public enum Naive {
    /// y = x Wᵀ + b with x: (N, I), w: (O, I), b: (O).
    public static func linear(_ x: [Float], _ w: [Float], _ b: [Float]?, n N: Int, i I: Int, o O: Int)
        -> [Float]
    {
        var y = [Float](repeating: 0, count: N * O)
        for n in 0..<N {
            for o in 0..<O {
                var sum = Double(b?[o] ?? 0)
                for i in 0..<I { sum += Double(x[n * I + i]) * Double(w[o * I + i]) }
                y[n * O + o] = Float(sum)
            }
        }
        return y
    }

    /// RMSNorm of rows of width C.
    public static func rmsNorm(_ x: [Float], _ w: [Float], eps: Float) -> [Float] {
        let C = w.count
        var y = x
        for r in 0..<(x.count / C) {
            var ss = 0.0
            for c in 0..<C { ss += Double(x[r * C + c]) * Double(x[r * C + c]) }
            let s = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            for c in 0..<C { y[r * C + c] = Float(Double(w[c]) * Double(x[r * C + c]) * s) }
        }
        return y
    }

    /// Rotate-half RoPE of rows of `heads` heads of width D, angle p * invFreq.
    public static func rope(_ x: [Float], positions: [Int32], heads: Int, headDim D: Int, invFreq: [Float])
        -> [Float]
    {
        var y = x
        let half = D / 2
        for (n, p) in positions.enumerated() {
            for h in 0..<heads {
                let base = (n * heads + h) * D
                for i in 0..<half {
                    let angle = Double(Float(p) * invFreq[i])
                    let (a, b) = (Double(x[base + i]), Double(x[base + i + half]))
                    y[base + i] = Float(a * cos(angle) - b * sin(angle))
                    y[base + i + half] = Float(b * cos(angle) + a * sin(angle))
                }
            }
        }
        return y
    }

    /// silu(g) * u on rows [g | u] of width 2F.
    public static func swiglu(_ gateUp: [Float], f F: Int) -> [Float] {
        let N = gateUp.count / (2 * F)
        var h = [Float](repeating: 0, count: N * F)
        for n in 0..<N {
            for f in 0..<F {
                let g = Double(gateUp[n * 2 * F + f])
                h[n * F + f] = Float(g / (1 + exp(-g)) * Double(gateUp[n * 2 * F + F + f]))
            }
        }
        return h
    }

    /// Causal GQA attention per sequence; qkv rows [q | k | v].
    public static func attention(
        _ qkv: [Float], lengths: [Int], heads H: Int, kvHeads K: Int, headDim D: Int, scale: Float
    ) -> [Float] {
        let ld = (H + 2 * K) * D
        let N = lengths.reduce(0, +)
        var out = [Float](repeating: 0, count: N * H * D)
        var start = 0
        for T in lengths {
            for h in 0..<H {
                let g = h / (H / K)
                for i in 0..<T {
                    var scores = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        var dot = 0.0
                        for d in 0..<D {
                            dot +=
                                Double(qkv[(start + i) * ld + h * D + d])
                                * Double(qkv[(start + j) * ld + (H + g) * D + d])
                        }
                        scores[j] = dot * Double(scale)
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let total = e.reduce(0, +)
                    for d in 0..<D {
                        var sum = 0.0
                        for j in 0...i {
                            sum += e[j] / total * Double(qkv[(start + j) * ld + (H + K + g) * D + d])
                        }
                        out[(start + i) * H * D + h * D + d] = Float(sum)
                    }
                }
            }
            start += T
        }
        return out
    }

    /// log softmax(h Wᵀ / τ)[target] per row.
    public static func logSoftmaxGather(
        _ hidden: [Float], _ w: [Float], targets: [Int32], c C: Int, v V: Int, temperature: Float
    ) -> [Float] {
        targets.enumerated().map { m, t in
            var z = [Double](repeating: 0, count: V)
            for v in 0..<V {
                var dot = 0.0
                for c in 0..<C { dot += Double(hidden[m * C + c]) * Double(w[v * C + c]) }
                z[v] = dot / Double(temperature)
            }
            let mx = z.max()!
            let lse = mx + log(z.map { exp($0 - mx) }.reduce(0, +))
            return Float(z[Int(t)] - lse)
        }
    }
}
