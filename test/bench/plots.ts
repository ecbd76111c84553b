// Plots for the benchmark report: vega-lite spec -> vega view -> SVG ->
// @resvg/resvg-js -> PNG. No canvas, no browser; text is drawn with a system
// font that resvg loads (DejaVu or Liberation on Debian).
import { existsSync, writeFileSync } from 'node:fs';

/** A vega-lite spec (kept loose: the specs are built in this folder and checked by vega-lite's compiler). */
export type VegaLiteSpec = Record<string, unknown>;

const FONT_CANDIDATES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf',
  '/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
];

export interface FontInfo {
  files: string[];
  family: string;
}

/** Font files found on this machine; resvg draws no text without one. */
export function findFonts(): FontInfo {
  const files = FONT_CANDIDATES.filter((f) => existsSync(f));
  const family = files.some((f) => f.includes('DejaVu')) ? 'DejaVu Sans' : files.some((f) => f.includes('Liberation')) ? 'Liberation Sans' : 'sans-serif';
  return { files, family };
}

// vega and vega-lite are ES modules; this project compiles to CommonJS, so they are loaded with import().
interface VegaLiteModule {
  compile(spec: VegaLiteSpec): { spec: unknown };
}
interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(scale?: number): Promise<string>; finalize(): void };
}

async function loadVega(): Promise<{ vl: VegaLiteModule; vega: VegaModule }> {
  const vl = (await import('vega-lite')) as unknown as VegaLiteModule;
  const vega = (await import('vega')) as unknown as VegaModule;
  return { vl, vega };
}

/** Renders a vega-lite spec to SVG text. */
export async function specToSvg(spec: VegaLiteSpec, fonts: FontInfo = findFonts()): Promise<string> {
  const { vl, vega } = await loadVega();
  const withConfig: VegaLiteSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    ...spec,
    config: { font: fonts.family, ...(spec.config as Record<string, unknown> | undefined) },
  };
  const compiled = vl.compile(withConfig).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG text -> PNG bytes at `scale` x the SVG's size. */
export async function svgToPng(svg: string, fonts: FontInfo = findFonts(), scale = 2): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { fontFiles: fonts.files, loadSystemFonts: fonts.files.length === 0, defaultFontFamily: fonts.family },
  });
  return r.render().asPng();
}

/** Writes `<base>.png` (and `<base>.svg` next to it); returns both paths. */
export async function writePlot(spec: VegaLiteSpec, base: string, scale = 2): Promise<{ png: string; svg: string }> {
  const fonts = findFonts();
  const svg = await specToSvg(spec, fonts);
  const png = await svgToPng(svg, fonts, scale);
  writeFileSync(`${base}.svg`, svg);
  writeFileSync(`${base}.png`, png);
  return { png: `${base}.png`, svg: `${base}.svg` };
}

/** True when `bytes` start with the PNG signature and an IHDR chunk; returns the size. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || sig.some((b, i) => bytes[i] !== b)) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return null;
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

/** At most `max` evenly spaced points of a series (plots of thousands of steps stay small). */
export function thin<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs];
  const out: T[] = [];
  const stride = (xs.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(xs[Math.round(i * stride)] as T);
  return out;
}
