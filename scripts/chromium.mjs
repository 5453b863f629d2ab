// Debian's Chromium, headless, as the tests and the benchmark launch it through playwright-core.
// The networking flags keep it from calling out of this machine's closed network.
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
