// The few members of the WebAssembly JavaScript API the wasm target uses, typed here. TypeScript's libraries for
// Node (ES2022 and @types/node 20) do not declare the `WebAssembly` global, and the package's declarations must not
// ask a consumer's project for the DOM library just to name a memory or a module.

/** A linear memory; ours is always shared, so its buffer is a SharedArrayBuffer. */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(deltaPages: number): number;
}

/** A compiled module: opaque, passed to `Instance` and posted to the workers. */
export interface WasmModule {
  readonly [wasmModuleBrand]: true;
}
declare const wasmModuleBrand: unique symbol;

export interface WasmInstance {
  readonly exports: Readonly<Record<string, unknown>>;
}

interface WasmApi {
  readonly Memory: new (descriptor: { readonly initial: number; readonly maximum: number; readonly shared: boolean }) => WasmMemory;
  readonly Instance: new (module: WasmModule, imports: Readonly<Record<string, Readonly<Record<string, unknown>>>>) => WasmInstance;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  validate(bytes: Uint8Array): boolean;
}

/** The engine's `WebAssembly` namespace (every Node ≥ 20 has one). */
export const wasm: WasmApi = (globalThis as unknown as { readonly WebAssembly: WasmApi }).WebAssembly;
