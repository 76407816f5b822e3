// Legend: N tokens, F MLP hidden size.

/// SwiGLU gate: h = silu(g) ⊙ u, silu(g) = g σ(g) (transformers' LlamaMLP with act "silu").
///
/// gateUp: (N, 2F) with each row [g | u] (gate_proj and up_proj as one matmul) -> h: (N, F).
public func swigluForward(h: Tensor, gateUp: Tensor) {
    let N = gateUp.shape[0]
    let F = gateUp.count / N / 2
    precondition(h.count == N * F, "swiglu: h \(h.shape) for gateUp \(gateUp.shape)")
    let (hp, gp) = (h.pointer, gateUp.pointer)
    parallelFor(N, minimumPerTask: 4) { rows in
        for n in rows {
            let (g, u, out) = (UnsafePointer(gp + n * 2 * F), UnsafePointer(gp + n * 2 * F + F), hp + n * F)
            var f = 0
            while f + 16 <= F {
                let gv = g.loadSIMD16(at: f)
                let sigmoid = 1 / (1 + simdExp(-gv))
                out.storeSIMD16(gv * sigmoid * u.loadSIMD16(at: f), at: f)
                f += 16
            }
            while f < F {
                let sigmoid = 1 / (1 + fastExp(-g[f]))
                out[f] = g[f] * sigmoid * u[f]
                f += 1
            }
        }
    }
}

/// Backward of `swigluForward`: dg = dh ⊙ u ⊙ σ(g)(1 + g(1 - σ(g))), du = dh ⊙ silu(g).
///
/// dH: (N, F), gateUp: (N, 2F) -> dGateUp: (N, 2F).
public func swigluBackward(dGateUp: Tensor, dH: Tensor, gateUp: Tensor) {
    let N = gateUp.shape[0]
    let F = gateUp.count / N / 2
    let (dgp, dhp, gp) = (dGateUp.pointer, dH.pointer, gateUp.pointer)
    parallelFor(N, minimumPerTask: 4) { rows in
        for n in rows {
            let (g, u) = (UnsafePointer(gp + n * 2 * F), UnsafePointer(gp + n * 2 * F + F))
            let (dg, du, dh) = (dgp + n * 2 * F, dgp + n * 2 * F + F, UnsafePointer(dhp + n * F))
            var f = 0
            while f + 16 <= F {
                let gv = g.loadSIMD16(at: f)
                let sigmoid = 1 / (1 + simdExp(-gv))
                let dhv = dh.loadSIMD16(at: f)
                du.storeSIMD16(dhv * gv * sigmoid, at: f)
                dg.storeSIMD16(dhv * u.loadSIMD16(at: f) * sigmoid * (1 + gv * (1 - sigmoid)), at: f)
                f += 16
            }
            while f < F {
                let sigmoid = 1 / (1 + fastExp(-g[f]))
                du[f] = dh[f] * g[f] * sigmoid
                dg[f] = dh[f] * u[f] * sigmoid * (1 + g[f] * (1 - sigmoid))
                f += 1
            }
        }
    }
}
