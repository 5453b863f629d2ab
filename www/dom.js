// Small DOM helpers shared by the views and both hosts, all Content-Security-Policy safe (no
// style attributes, no inline handlers).

/** document.createElement with properties and ARIA / data attributes; never a style attribute. */
export function h(tag, props = {}, attrs = {}, children = []) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** An arrow key's move [dx, dy] (up is +y) of `step`, or null for any other key. */
export function arrowMove(event, step) {
  return { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[event.key] ?? null;
}

/** A pointer event's position in `canvas`'s own pixels (the canvas may be scaled by CSS). */
export function canvasPoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  return [((event.clientX - rect.left) / rect.width) * canvas.width, ((event.clientY - rect.top) / rect.height) * canvas.height];
}

/** Calls `fn` once on the next animation frame however often it is asked before then. */
export function frameScheduler(fn) {
  let frame = 0;
  return () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      fn();
    });
  };
}

/**
 * Runs `start` once, when `element` first comes within `margin` of the viewport, so that work
 * and downloads for what the reader has not scrolled to wait until they do. Returns a function
 * that cancels it.
 */
export function whenNear(element, start, margin = '200px') {
  const observer = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    start();
  }, { rootMargin: margin });
  observer.observe(element);
  return () => observer.disconnect();
}
