// The <latent-lab> element's look: one constructed stylesheet adopted by every shadow root (CSSOM,
// which a strict `style-src 'self'` allows, unlike a <style> element or a style attribute).
// Custom properties inherit through the shadow boundary, so a page can restyle the element from
// outside: latent-lab { --ll-bg: #fff; --ll-fg: #222; }.
const CSS_TEXT = `
:host {
  display: block;
  max-width: 100%;
  margin: 1.5em 0;
  font-family: inherit;
  font-size: 0.9rem;
  line-height: 1.4;
  --ll-bg: #14171d;
  --ll-fg: #e6e9ef;
  --ll-muted: #9aa3b2;
  --ll-accent: #5fb0e8;
  --ll-border: #2b3140;
  --ll-error-bg: #5a1d1d;
}
/* Room for the view before it draws, so that nothing below shifts as it loads, and so that a
   lazily loaded element below the fold stays below it until the reader scrolls there. */
:host { min-height: 150px; }
:host(:not([view])), :host([view="sliders"]) { min-height: 300px; }
:host([view="grid"]) { min-height: 400px; }
:host([view="ae-vs-vae"]) { min-height: 600px; }
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.frame {
  max-width: 100%;
  margin: 0 auto;
  padding: 12px;
  border-radius: 8px;
  background: var(--ll-bg);
  color: var(--ll-fg);
}
.body { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.pictures { flex: 1 1 160px; max-width: 280px; display: flex; flex-wrap: wrap; gap: 8px; }
.pictures > canvas { flex: 1 1 140px; min-width: 0; }
.pictures.with-pad { flex-basis: 100%; max-width: 540px; }
.controls { flex: 3 1 220px; min-width: 0; display: flex; flex-direction: column; gap: 8px; }
canvas { display: block; width: 100%; height: auto; image-rendering: pixelated; background: #1a1d24; }
canvas.pad { image-rendering: auto; aspect-ratio: 1; cursor: crosshair; touch-action: none; }
canvas:focus-visible, button:focus-visible, input:focus-visible { outline: 2px solid var(--ll-accent); outline-offset: 2px; }
/* Each slider: its name, a track that may shrink to any width, and its value, never overlapping. */
.sliders { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5em, 1fr)); gap: 4px 12px; }
.sliders label { display: grid; grid-template-columns: 2.2em minmax(0, 1fr) 3.2em; align-items: center; gap: 6px; font-variant-numeric: tabular-nums; }
.sliders input { width: 100%; min-width: 0; margin: 0; accent-color: var(--ll-accent); }
.sliders output { text-align: right; white-space: nowrap; color: var(--ll-muted); }
.buttons { display: flex; flex-wrap: wrap; gap: 6px; }
button {
  font: inherit;
  color: var(--ll-fg);
  background: var(--ll-border);
  border: 1px solid #444b5c;
  border-radius: 5px;
  padding: 4px 10px;
  min-height: 32px;
  cursor: pointer;
}
button:disabled { opacity: 0.5; cursor: default; }
button[aria-pressed="true"] { background: var(--ll-accent); color: #0b0d12; }
.digits button { min-width: 32px; padding: 4px 0; }
.caption, .status { margin: 8px 0 0; color: var(--ll-muted); }
.error { margin: 8px 0 0; padding: 8px 10px; border-radius: 6px; background: var(--ll-error-bg); color: #fff; white-space: pre-wrap; }
.error[hidden], .status[hidden] { display: none; }
canvas.map, canvas.drawpad { image-rendering: auto; aspect-ratio: 1; cursor: crosshair; touch-action: none; }
.mapbox { flex: 1 1 260px; max-width: 420px; min-width: 0; }
.side { flex: 1 1 140px; min-width: 0; display: flex; flex-direction: column; gap: 8px; }
.side canvas.digit { max-width: 140px; }
.axis { margin: 2px 0 0; color: var(--ll-muted); font-size: 0.8rem; }
.legend { list-style: none; margin: 0; padding: 0; display: grid; grid-template-columns: repeat(2, auto); gap: 2px 10px; font-size: 0.8rem; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 5px; border: 1px solid #000; }
.small { display: flex; gap: 8px; align-items: flex-end; }
.small canvas { width: 84px; }
canvas.curve { image-rendering: auto; }
.pair { flex-basis: 100%; display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; }
.pair figure { margin: 0; display: flex; flex-direction: column; gap: 6px; min-width: 0; }
`;

let sheet = null;
export function styleSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS_TEXT);
  }
  return sheet;
}
