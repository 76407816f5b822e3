#!/usr/bin/env python3
"""Writes Tests/TrainingTests/Fixtures/*.json: the GRPO loss and its gradient by an independent numpy
implementation (the gradient by central differences in float64), AdamW steps by torch.optim.AdamW with
clip_grad_norm_, and learning-rate schedules by transformers' schedulers.

Run with a venv that has numpy, torch and transformers: python scripts/make_training_fixtures.py
"""
import json
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/TrainingTests/Fixtures"


def central_difference(loss, logp, args, h=1e-6):
    """d loss(logp, *args) / d logp by central differences in float64."""
    grad = np.zeros(len(logp))
    for t in range(len(logp)):
        up, down = logp.copy(), logp.copy()
        up[t] += h
        down[t] -= h
        grad[t] = (loss(up, *args) - loss(down, *args)) / (2 * h)
    return grad


def loss_numpy(logp, old, ref, mask, lengths, adv, loss_type, eps_low, eps_high, beta, max_len, tokens_in_batch):
    """The per-token GRPO loss, aggregated, written from the equations (TRL docs, DAPO, Dr. GRPO papers)."""
    starts = np.cumsum([0] + lengths[:-1])
    per_seq = []
    for i, (s, n) in enumerate(zip(starts, lengths)):
        lp, m = logp[s:s + n], mask[s:s + n]
        ratio = np.exp(lp - old[s:s + n])
        unclipped = ratio * adv[i]
        clipped = np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[i]
        loss = -np.minimum(unclipped, clipped)
        if beta != 0:
            d = ref[s:s + n] - lp
            loss = loss + beta * (np.exp(d) - d - 1)
        per_seq.append((loss * m, m))
    if loss_type == "grpo":
        return np.mean([l.sum() / max(m.sum(), 1) for l, m in per_seq])
    total = sum(l.sum() for l, _ in per_seq)
    if loss_type == "bnpo":
        return total / max(mask.sum(), 1)
    if loss_type == "dr_grpo":
        return total / (len(lengths) * max_len)
    return total / tokens_in_batch


def policy_cases(rng):
    cases = []
    configs = []
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        for beta in [0.0, 0.04]:
            for old in [False, True]:
                configs.append((loss_type, beta, old))
    for index, (loss_type, beta, has_old) in enumerate(configs):
        lengths = [int(x) for x in rng.integers(1, 9, size=5)]
        T = sum(lengths)
        logp = rng.uniform(-4, -0.05, size=T)
        # ratios spread across both clip edges (0.6 .. 1.5), away from the kinks for finite differences
        old = logp - rng.uniform(-0.5, 0.4, size=T) if has_old else None
        if old is not None:
            r = np.exp(logp - old)
            for edge in (0.8, 1.28):
                near = np.abs(r - edge) < 1e-3
                old[near] -= 0.01
        ref = logp + rng.normal(0, 0.3, size=T) if beta != 0 else None
        mask = (rng.uniform(size=T) > 0.15).astype(np.float64)
        adv = rng.normal(0, 1, size=len(lengths))
        adv[0] = 0.0
        eps_low, eps_high = 0.2, 0.28
        max_len = 10
        tokens_in_batch = float(mask.sum() + 7)
        # on-policy (mu = 1): old log-probs are the current ones detached, held fixed while differentiating
        fixed_old = old if old is not None else logp.copy()
        args = (fixed_old, ref, mask, lengths, adv, loss_type, eps_low, eps_high, beta, max_len, tokens_in_batch)
        loss = loss_numpy(logp, *args)
        grad = central_difference(loss_numpy, logp, args)
        cases.append(dict(
            name=f"{loss_type}-beta{beta}-{'old' if has_old else 'onpolicy'}", loss_type=loss_type, beta=beta,
            epsilon_low=eps_low, epsilon_high=eps_high, max_completion_length=max_len,
            tokens_in_batch=tokens_in_batch, lengths=lengths, logp=logp.tolist(),
            old_logp=None if old is None else old.tolist(), ref_logp=None if ref is None else ref.tolist(),
            mask=mask.tolist(), advantages=adv.tolist(), loss=float(loss), dlogp=grad.tolist()))
    return cases


def loss_variant(logp, old, ref, mask, lengths, adv, loss_type, eps_low, eps_high, beta, max_len, tokens_in_batch,
                 level, delta, bias_kl, detached_logp):
    """TRL 1.16's GRPO loss written from its equations: importance_sampling_level token or sequence (GSPO,
    the masked mean log-ratio of a sequence), two-sided clipping (delta), CISPO (loss_type cispo: the ratio,
    clamped at epsilon_high and detached, times A times logp), and use_bias_correction_kl (the k3 KL times
    the ratio, which carries a gradient even on-policy). detached_logp holds the log-probs a detached ratio
    is computed from, so finite differences do not see through it."""
    starts = np.cumsum([0] + lengths[:-1])
    per_seq = []
    for i, (s, n) in enumerate(zip(starts, lengths)):
        lp, m = logp[s:s + n], mask[s:s + n]

        def log_weights(values):
            log_ratio = values - old[s:s + n]
            if level == "sequence":
                return np.full(n, (log_ratio * m).sum() / max(m.sum(), 1.0))
            return log_ratio

        ratio = np.exp(log_weights(lp))
        if loss_type == "cispo":
            fixed = np.minimum(np.exp(log_weights(detached_logp[s:s + n])), eps_high)
            loss = -fixed * adv[i] * lp
        else:
            first = np.minimum(ratio, delta) if delta is not None else ratio
            loss = -np.minimum(first * adv[i], np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[i])
        if beta != 0:
            d = ref[s:s + n] - lp
            kl = np.exp(d) - d - 1
            loss = loss + beta * (kl * ratio if bias_kl else kl)
        per_seq.append((loss * m, m))
    if loss_type == "grpo":
        return np.mean([l.sum() / max(m.sum(), 1) for l, m in per_seq])
    total = sum(l.sum() for l, _ in per_seq)
    if loss_type == "bnpo":
        return total / max(mask.sum(), 1)
    if loss_type == "dr_grpo":
        return total / (len(lengths) * max_len)
    return total / tokens_in_batch


def policy_variant_cases():
    rng = np.random.default_rng(4321)
    configs = [
        ("grpo", "sequence", None, False, 0.0), ("grpo", "sequence", None, True, 0.04),
        ("dapo", "sequence", None, False, 0.04), ("dapo", "token", 1.3, False, 0.0),
        ("grpo", "token", 1.3, True, 0.04), ("dapo", "token", None, True, 0.04),
        ("bnpo", "token", None, True, 0.04), ("cispo", "token", None, False, 0.0),
        ("cispo", "token", None, True, 0.04), ("cispo", "sequence", None, False, 0.04),
    ]
    cases = []
    for loss_type, level, delta, bias_kl, beta in configs:
        for has_old in [False, True]:
            lengths = [int(x) for x in rng.integers(1, 9, size=5)]
            T = sum(lengths)
            logp = rng.uniform(-4, -0.05, size=T)
            old = logp - rng.uniform(-0.5, 0.4, size=T) if has_old else None
            ref = logp + rng.normal(0, 0.3, size=T) if beta != 0 else None
            mask = (rng.uniform(size=T) > 0.15).astype(np.float64)
            adv = rng.normal(0, 1, size=len(lengths))
            eps_low, eps_high = 0.2, (0.28 if loss_type != "cispo" else 1.15)
            max_len, tokens_in_batch = 10, float(mask.sum() + 7)
            fixed_old = old if old is not None else logp.copy()
            args = (fixed_old, ref, mask, lengths, adv, loss_type, eps_low, eps_high, beta, max_len, tokens_in_batch,
                    level, delta, bias_kl, logp.copy())
            loss = loss_variant(logp, *args)
            # stay away from the kinks (clip edges, delta) so central differences are the gradient
            grad = central_difference(loss_variant, logp, args)
            cases.append(dict(
                name=f"{loss_type}-{level}-delta{delta}-biaskl{bias_kl}-beta{beta}-{'old' if has_old else 'onpolicy'}",
                loss_type=loss_type, importance_sampling_level=level, delta=delta, use_bias_correction_kl=bias_kl,
                beta=beta, epsilon_low=eps_low, epsilon_high=eps_high, max_completion_length=max_len,
                tokens_in_batch=tokens_in_batch, lengths=lengths, logp=logp.tolist(),
                old_logp=None if old is None else old.tolist(), ref_logp=None if ref is None else ref.tolist(),
                mask=mask.tolist(), advantages=adv.tolist(), loss=float(loss), dlogp=grad.tolist()))
    return cases


def rloo_loss(logp, old, mask, lengths, adv, eps_low, eps_high):
    """TRL 1.16 RLOOTrainer's loss from its equations: log_ratio = sum_t m (logp - old) per sequence,
    -min(exp(log_ratio) A, clip(exp(log_ratio)) A), mean over sequences."""
    starts = np.cumsum([0] + lengths[:-1])
    losses = []
    for i, (s, n) in enumerate(zip(starts, lengths)):
        ratio = np.exp(((logp[s:s + n] - old[s:s + n]) * mask[s:s + n]).sum())
        losses.append(-min(ratio * adv[i], np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[i]))
    return float(np.mean(losses))


def rloo_cases():
    rng = np.random.default_rng(2405)
    cases = []
    for has_old in [False, True, True, True]:
        lengths = [int(x) for x in rng.integers(1, 6, size=6)]
        T = sum(lengths)
        logp = rng.uniform(-4, -0.05, size=T)
        # summed log-ratios spread across the clip edges
        old = logp - rng.uniform(-0.12, 0.12, size=T) if has_old else None
        mask = (rng.uniform(size=T) > 0.15).astype(np.float64)
        adv = rng.normal(0, 1, size=len(lengths))
        fixed_old = old if old is not None else logp.copy()
        args = (fixed_old, mask, lengths, adv, 0.2, 0.28)
        loss = rloo_loss(logp, *args)
        grad = central_difference(rloo_loss, logp, args)
        cases.append(dict(
            lengths=lengths, logp=logp.tolist(), old_logp=None if old is None else old.tolist(), mask=mask.tolist(),
            advantages=adv.tolist(), epsilon_low=0.2, epsilon_high=0.28, loss=loss, dlogp=grad.tolist()))
    return cases


def advantage_cases(rng):
    cases = []
    for scaling in ["group", "batch", "none"]:
        rewards = rng.choice([0.0, 0.1, 1.0, 1.1], size=12)
        rewards[4:8] = 1.0  # one group with zero spread
        G = 4
        r = rewards.reshape(-1, G)
        mean = r.mean(1, keepdims=True)
        if scaling == "group":
            adv = (r - mean) / (r.std(1, ddof=1, keepdims=True) + 1e-4)
        elif scaling == "batch":
            adv = (r - mean) / (rewards.std(ddof=1) + 1e-4)
        else:
            adv = r - mean
        cases.append(dict(scaling=scaling, group_size=G, rewards=rewards.tolist(), advantages=adv.ravel().tolist()))
    return cases


def adamw_case(rng):
    import torch
    shapes = {"w": (3, 4), "b": (4,)}
    params = {k: torch.nn.Parameter(torch.tensor(rng.normal(size=s), dtype=torch.float64)) for k, s in shapes.items()}
    opt = torch.optim.AdamW([
        {"params": [params["w"]], "weight_decay": 0.1},
        {"params": [params["b"]], "weight_decay": 0.0},
    ], lr=0.01, betas=(0.9, 0.95), eps=1e-8)
    initial = {k: p.detach().numpy().ravel().tolist() for k, p in params.items()}
    grads, norms, lrs = [], [], [0.01, 0.005, 0.0025]
    for step, lr in enumerate(lrs):
        g = {k: rng.normal(size=s) * (3 if step == 0 else 0.1) for k, s in shapes.items()}
        for k, p in params.items():
            p.grad = torch.tensor(g[k], dtype=torch.float64)
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm=1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        grads.append({k: v.ravel().tolist() for k, v in g.items()})
    final = {k: p.detach().numpy().ravel().tolist() for k, p in params.items()}
    return dict(initial=initial, gradients=grads, learning_rates=lrs, norms=norms, final=final,
                weight_decay=0.1, beta1=0.9, beta2=0.95, epsilon=1e-8, max_grad_norm=1.0)


def schedule_cases():
    import torch
    from transformers import get_scheduler
    cases = []
    for name, kwargs in [("constant", {}), ("constant_with_warmup", {}), ("linear", {}), ("cosine", {}),
                         ("cosine_with_min_lr", {"min_lr_rate": 0.1})]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        sched = get_scheduler(name, opt, num_warmup_steps=3, num_training_steps=10,
                              scheduler_specific_kwargs=kwargs)
        rates = []
        for _ in range(12):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        cases.append(dict(schedule=name, base=0.5, warmup=3, total=10, min_rate=kwargs.get("min_lr_rate", 0.0),
                          rates=rates))
    return cases


def ppo_cases():
    """PPO's rollout arithmetic and losses as TRL's PPOTrainer states them, in torch with autograd.

    Written from the equations: k1/k3 token KL, -kl_coef * KL plus the score on the last token (veRL's
    placement; TRL puts it one past the end when there is room), masked whitening with the unbiased
    variance, GAE backwards in time, returns = advantages + values, whitened advantages, the clipped
    ratio loss and the clipped value loss (0.5 * masked mean of the larger square).
    """
    import torch
    torch.manual_seed(77)
    cases = []
    for kl_estimator, whiten in (("k1", False), ("k3", True)):
        lengths = [3, 5, 1, 4]
        T = sum(lengths)
        settings = dict(kl_coef=0.05, kl_estimator=kl_estimator, whiten_rewards=whiten, gamma=0.97, lam=0.9,
                        cliprange=0.2, cliprange_value=0.2, vf_coef=0.1)
        scores = torch.tensor([1.0, 0.0, 0.5, -1.0], dtype=torch.float64)
        old = -torch.rand(T, dtype=torch.float64) * 3
        ref = old + torch.randn(T, dtype=torch.float64) * 0.3
        values = torch.randn(T, dtype=torch.float64) * 0.5
        mask = torch.ones(T, dtype=torch.float64)
        mask[3:8] = 0 if whiten else 1
        new_logp = (old + torch.randn(T, dtype=torch.float64) * 0.25).requires_grad_()
        new_values = (values + torch.randn(T, dtype=torch.float64) * 0.3).requires_grad_()

        def whiten_fn(x, m, shift_mean=True):
            n = m.sum()
            mean = (x * m).sum() / n
            var = (((x - mean) ** 2) * m).sum() / n * (n / (n - 1))
            out = (x - mean) * torch.rsqrt(var + 1e-8)
            return (out if shift_mean else out + mean) * m

        log_ratio = ref - old
        kl = -log_ratio if kl_estimator == "k1" else torch.expm1(log_ratio) - log_ratio
        rewards = -settings["kl_coef"] * kl
        ends = torch.tensor(np.cumsum(lengths) - 1)
        rewards[ends] += scores
        if whiten:
            rewards = whiten_fn(rewards, mask, shift_mean=False)
        advantages = torch.zeros(T, dtype=torch.float64)
        start = 0
        for length in lengths:
            running, next_value = 0.0, 0.0
            for t in reversed(range(start, start + length)):
                delta = rewards[t] + settings["gamma"] * next_value - values[t]
                running = delta + settings["gamma"] * settings["lam"] * running
                advantages[t] = running
                next_value = values[t]
            start += length
        returns = advantages + values
        advantages = whiten_fn(advantages, mask)

        ratio = torch.exp(new_logp - old)
        clip = settings["cliprange"]
        pg = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
        pg_loss = (pg * mask).sum() / mask.sum()
        c = settings["cliprange_value"]
        clipped_values = torch.clamp(new_values, values - c, values + c)
        vf1 = (new_values - returns) ** 2
        vf2 = (clipped_values - returns) ** 2
        vf_loss = 0.5 * (torch.max(vf1, vf2) * mask).sum() / mask.sum()
        vf_clipfrac = ((vf2 > vf1).double() * mask).sum() / mask.sum()
        (pg_loss + settings["vf_coef"] * vf_loss).backward()
        f = lambda x: [float(v) for v in x.detach()]
        cases.append(dict(settings=settings, lengths=lengths, scores=f(scores), old_logp=f(old), ref_logp=f(ref),
                          values=f(values), mask=f(mask), new_logp=f(new_logp), new_values=f(new_values),
                          rewards=f(rewards), returns=f(returns), advantages=f(advantages),
                          pg_loss=float(pg_loss), vf_loss=float(vf_loss), vf_clipfrac=float(vf_clipfrac),
                          d_new_logp=f(new_logp.grad), d_new_values=f(new_values.grad)))
    return dict(cases=cases)


def main():
    rng = np.random.default_rng(1234)
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures = dict(policy_loss=policy_cases(rng), advantages=advantage_cases(rng), adamw=adamw_case(rng),
                    schedules=schedule_cases(), policy_loss_variants=policy_variant_cases(), policy_loss_rloo=rloo_cases(),
                    ppo_equations=ppo_cases())
    for name, value in fixtures.items():
        (OUT / f"{name}.json").write_text(json.dumps(value, indent=1) + "\n")
        print("wrote", OUT / f"{name}.json")


if __name__ == "__main__":
    main()
