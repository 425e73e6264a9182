/** Flags every headless Chromium of the project runs with (see chromium.mjs). */
export declare const CHROMIUM_ARGS: string[];
/** A Chromium executable to use, or undefined to let Playwright use its own browser. */
export declare function findChromium(): string | undefined;
/** Finds Chromium, installing Debian's package when there is none. */
export declare function ensureChromium(): string;
