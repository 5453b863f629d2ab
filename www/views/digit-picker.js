// The digit a conditional model draws: ten toggle buttons (aria-pressed). The page's picker and
// every <latent-lab> view of a conditional model mount it.
import { h } from '../dom.js';

/**
 * Fills `box` with buttons 0–9, `digit` pressed; `idPrefix`, if given, names them `${idPrefix}${d}`.
 * A click presses its button and calls onPick(d). Returns {set(d)} to press one from outside.
 */
export function mountDigitPicker({ box, digit, idPrefix = null, guard, onPick }) {
  const buttons = [];
  const set = (d) => buttons.forEach((b, i) => b.setAttribute('aria-pressed', String(i === d)));
  for (let d = 0; d < 10; d++) {
    const b = h('button', { type: 'button', textContent: String(d) }, { 'aria-label': `Digit ${d}`, 'aria-pressed': d === digit });
    if (idPrefix) b.id = `${idPrefix}${d}`;
    b.addEventListener('click', guard(() => {
      set(d);
      onPick(d);
    }));
    buttons.push(b);
  }
  box.replaceChildren(...buttons);
  return { set };
}
