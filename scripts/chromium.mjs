// Debian's Chromium, headless, as the tests and the benchmark launch it through playwright-core.
// The networking flags keep it from calling out of this machine's closed network.
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
// WebGPU in headless Chromium on this GPU-less machine: SwiftShader's Vulkan adapter.
export const CHROMIUM_WEBGPU_ARGS = [
  ...CHROMIUM_ARGS.filter((a) => a !== '--disable-gpu'),
  '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan', '--use-angle=swiftshader',
];
