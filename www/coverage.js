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
