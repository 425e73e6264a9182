/**
 * The few globals that every runtime core runs in (browsers, workers, Node >= 20, workerd)
 * provides. Core compiles with `"lib": ["ES2022"]` and `"types": []` so that a stray `window`,
 * `document`, `Buffer` or `process` fails to compile; what is declared here is the deliberate,
 * reviewed exception. Add to it only what all four runtimes have.
 */

interface TextEncoder {
  readonly encoding: string;
  encode(input?: string): Uint8Array;
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number };
}
declare var TextEncoder: {
  prototype: TextEncoder;
  new (): TextEncoder;
};

interface TextDecoderOptions {
  fatal?: boolean;
  ignoreBOM?: boolean;
}
interface TextDecodeOptions {
  stream?: boolean;
}
interface TextDecoder {
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: ArrayBufferView | ArrayBuffer, options?: TextDecodeOptions): string;
}
declare var TextDecoder: {
  prototype: TextDecoder;
  new (label?: string, options?: TextDecoderOptions): TextDecoder;
};
