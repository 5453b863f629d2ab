#!/usr/bin/env python3
"""Native PyTorch timings of the training steps the CPU engine runs (issue 12's native column).

One step of the latent-20 VAE (src/vae.rs, src/engine/vae_step.rs) and of the default-size GAN
(src/gan.rs, src/engine/gan_step.rs), each with Adam as src/adam.rs configures it, on the CPU at
each batch size and thread count asked; prints one JSON object on stdout: the median and fastest
ms per step after a warm-up, on fixed random MNIST-like inputs (bytes / 255).

PyTorch is not a dependency of the project; install it outside the repo and run, for example:

    python3 -m venv /work/torch-venv && /work/torch-venv/bin/pip install torch
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432 \
        /work/torch-venv/bin/python bench/pytorch-step.py [--steps 50] [--warmup 10] \
        [--batches 128,32] [--threads 1,2] [--adam default|foreach|fused]

With --serve it times steps on request instead, so that a caller can alternate blocks of its own
steps with PyTorch's (bench/run.mjs's goal measure): each line on stdin, a JSON object {"kind":
"vae" | "gan", "batch": N, "threads": N, "steps": N}, is answered by one line on stdout, {"ms":
[...]}, each step's time; the model of each kind and batch is made on its first request and goes
on training across requests, as the tab's does. EOF ends it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 784


class Vae(nn.Module):
    """src/vae.rs: fc1 → ReLU → (fc21 μ, fc22 log σ²); z = μ + exp(½ log σ²)·ε; fc3 → ReLU → fc4."""

    def __init__(self, latent=20, hidden=400):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(PIXELS, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, PIXELS)

    def loss(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.fc4(F.relu(self.fc3(z)))
        n = x.shape[0]
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp()) / n
        return bce + kl


def generator(latent=64, hidden=256):
    """src/gan.rs: z → 256 → 512 → 784, LeakyReLU(0.2), sigmoid (the discriminator sees 2s − 1 = tanh(l/2))."""
    return nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * hidden),
                         nn.LeakyReLU(0.2), nn.Linear(2 * hidden, PIXELS), nn.Sigmoid())


def discriminator(hidden=256):
    """src/gan.rs: 2x − 1 → 512 → 256 → 1 logit, LeakyReLU(0.2), dropout 0.3 after each hidden layer."""
    return nn.Sequential(nn.Linear(PIXELS, 2 * hidden), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                         nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(hidden, 1))


def adam(params, lr, betas, mode):
    kw = {} if mode == "default" else {mode: True}
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, **kw)


def vae_stepper(adam_mode):
    model = Vae()
    opt = adam(model.parameters(), 1e-3, (0.9, 0.999), adam_mode)

    def step(x):
        opt.zero_grad(set_to_none=True)
        model.loss(x).backward()
        opt.step()
    return step


def gan_stepper(adam_mode, latent=64):
    g, d = generator(latent), discriminator()
    g.train(), d.train()
    opt_g = adam(g.parameters(), 2e-4, (0.5, 0.999), adam_mode)
    opt_d = adam(d.parameters(), 2e-4, (0.5, 0.999), adam_mode)

    def step(x):
        n = x.shape[0]
        fake = g(torch.randn(n, latent))
        # discriminator: real and generated rows in one pass, the generated ones as constants
        opt_d.zero_grad(set_to_none=True)
        logits = d(torch.cat([x, fake.detach()]) * 2 - 1).squeeze(1)
        (F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()).backward()
        opt_d.step()
        # generator (non-saturating), judged by the stepped discriminator with fresh dropout; the
        # discriminator's weights take no gradient here, as in the engine
        opt_g.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        F.softplus(-d(fake * 2 - 1).squeeze(1)).mean().backward()
        d.requires_grad_(True)
        opt_g.step()
    return step


def minibatches(batch):
    """A few fixed minibatches, cycled: MNIST-like pixels (bytes / 255)."""
    return [torch.randint(0, 256, (batch, PIXELS)).float() / 255 for _ in range(4)]


STEPPERS = {"vae": vae_stepper, "gan": gan_stepper}


class Stepping:
    """A model of one kind and batch with its minibatches, trained a block of steps at a time."""

    def __init__(self, kind, batch, adam_mode):
        torch.manual_seed(0)
        self.step = STEPPERS[kind](adam_mode)
        self.data = minibatches(batch)
        self.done = 0

    def run(self, threads, steps):
        torch.set_num_threads(threads)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step(self.data[self.done % len(self.data)])
            times.append((time.perf_counter() - t0) * 1e3)
            self.done += 1
        return times


def time_steps(kind, batch, threads, steps, warmup, adam_mode):
    model = Stepping(kind, batch, adam_mode)
    model.run(threads, warmup)
    times = model.run(threads, steps)
    return {"median_ms": round(statistics.median(times), 3), "fastest_ms": round(min(times), 3)}


def serve(adam_mode):
    models = {}
    for line in sys.stdin:
        ask = json.loads(line)
        kind, batch, threads, steps = ask["kind"], int(ask["batch"]), int(ask["threads"]), int(ask["steps"])
        if kind not in STEPPERS:
            raise SystemExit(f"--serve: unknown kind {kind!r} (vae or gan)")
        if (kind, batch) not in models:
            models[kind, batch] = Stepping(kind, batch, adam_mode)
        times = models[kind, batch].run(threads, steps)
        print(json.dumps({"ms": [round(t, 4) for t in times]}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batches", default="128,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--adam", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.Adam's implementation (default: PyTorch's choice, the for-loop one on the CPU)")
    ap.add_argument("--serve", action="store_true", help="time steps as stdin asks (see above)")
    args = ap.parse_args()
    if args.serve:
        return serve(args.adam)
    ints = lambda s: [int(v) for v in s.split(",")]
    rows = []
    for kind in STEPPERS:
        for batch in ints(args.batches):
            for threads in ints(args.threads):
                r = time_steps(kind, batch, threads, args.steps, args.warmup, args.adam)
                rows.append({"kind": kind, "batch": batch, "threads": threads, **r})
    print(json.dumps({
        "torch": torch.__version__,
        "adam": args.adam,
        "steps": args.steps,
        "warmup": args.warmup,
        "cpu_count": os.cpu_count(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
