// Mode coverage: how evenly a model's samples spread over the ten digits, as the classifier reads them.

/** −Σ p ln p of a histogram, in nats (ln 10 ≈ 2.30 when every digit is equally common). */
export function entropy(counts) {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((h, c) => (c > 0 ? h - (c / n) * Math.log(c / n) : h), 0);
}

export function histogram(digits) {
  const counts = new Array(10).fill(0);
  for (const d of digits) counts[d] += 1;
  return counts;
}

// A digit is covered when it has at least a fifth of an even share of the samples; the samples
// are collapsing onto a digit when it has four times its even share or more.
const COVERED_SHARE = 0.02;
const COLLAPSE_SHARE = 0.4;

/** The classifier's verdict on a histogram, in a few words: "covers 10 of 10 digits", "collapsing onto 3s". */
export function coverageVerdict(counts) {
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return 'no samples yet';
  const top = counts.indexOf(Math.max(...counts));
  if (counts[top] / n >= COLLAPSE_SHARE) return `collapsing onto ${top}s (${Math.round((100 * counts[top]) / n)}% of the samples)`;
  const covered = counts.filter((c) => c / n >= COVERED_SHARE).length;
  return `covers ${covered} of 10 digits`;
}
