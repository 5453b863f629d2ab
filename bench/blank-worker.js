// A module worker with nothing of its own: bench/time-to-digits.mjs runs its training in it
// (Playwright's worker.evaluate), where the page's training worker would, so that www/assets.js
// chooses the build the page's worker chooses (its address carries ?simd= and ?threads= too).
