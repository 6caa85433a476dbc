/**
 * Reference point for the AES-GCM backend choice: the same seal through the
 * system's OpenSSL `libcrypto` (EVP, one context per key, a nonce per call,
 * AES-NI where the CPU has it), called through Deno FFI, beside the Web
 * Crypto calls the library makes. The library does not use libcrypto: the
 * performance issue rules native code out, `--allow-ffi` lifts Deno's
 * sandbox, and Deno Deploy has no FFI. This bench keeps the cost of that
 * choice measurable (docs/ARCHITECTURE.md "Crypto backends").
 *
 * Run: `deno task bench:native`. Without a loadable libcrypto 3 it says so
 * and registers nothing.
 */

/** Where Debian/Ubuntu, Fedora/Arch and Homebrew put libcrypto 3. */
const CANDIDATES: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/usr/lib64/libcrypto.so.3",
  "/usr/lib/libcrypto.so.3",
  "/opt/homebrew/lib/libcrypto.3.dylib",
  "/usr/local/lib/libcrypto.3.dylib",
];

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_128_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_CIPHER_CTX_ctrl: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "i32",
  },
} as const;

/** EVP_CTRL_GCM_GET_TAG (openssl/evp.h). */
const GET_TAG = 0x10;

function open(): Deno.DynamicLibrary<typeof SYMBOLS> | null {
  for (const path of CANDIDATES) {
    try {
      return Deno.dlopen(path, SYMBOLS);
    } catch {
      // Not here (or not allowed): try the next place.
    }
  }
  return null;
}

function fill(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const lib = open();
if (lib === null) {
  console.error(
    `native_reference_bench.ts: no libcrypto 3 at ${
      CANDIDATES.join(", ")
    }; nothing to measure`,
  );
} else {
  const s = lib.symbols;
  const key = fill(16);
  const nonce = fill(12);
  const aad = fill(4);
  const ctx = s.EVP_CIPHER_CTX_new();
  if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed");
  const check = (what: string, rc: number) => {
    if (rc !== 1) throw new Error(`${what} failed (${rc})`);
  };
  check(
    "EVP_EncryptInit_ex",
    s.EVP_EncryptInit_ex(ctx, s.EVP_aes_128_gcm(), null, key, null),
  );
  const outLength = new Uint8Array(4);
  /** Seals `data` as SSH does (4-byte AAD, 16-byte tag) into `out`. */
  const seal = (
    data: Uint8Array<ArrayBuffer>,
    out: Uint8Array<ArrayBuffer>,
  ) => {
    check(
      "EVP_EncryptInit_ex",
      s.EVP_EncryptInit_ex(ctx, null, null, null, nonce),
    );
    check(
      "EVP_EncryptUpdate",
      s.EVP_EncryptUpdate(ctx, null, outLength, aad, 4),
    );
    check(
      "EVP_EncryptUpdate",
      s.EVP_EncryptUpdate(ctx, out, outLength, data, data.length),
    );
    const tail = out.subarray(data.length);
    check("EVP_EncryptFinal_ex", s.EVP_EncryptFinal_ex(ctx, tail, outLength));
    check("EVP_CIPHER_CTX_ctrl", s.EVP_CIPHER_CTX_ctrl(ctx, GET_TAG, 16, tail));
  };
  const webKey = await crypto.subtle.importKey(
    "raw",
    key,
    "AES-GCM",
    false,
    ["encrypt"],
  );
  const web = (data: Uint8Array<ArrayBuffer>) =>
    crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad },
      webKey,
      data,
    );

  // Both backends must produce the same bytes, or the figures mean nothing.
  const sample = fill(1000);
  const native = new Uint8Array(sample.length + 16);
  seal(sample, native);
  const expected = new Uint8Array(await web(sample));
  if (!expected.every((b, i) => b === native[i])) {
    throw new Error("libcrypto and Web Crypto disagree on AES-128-GCM");
  }

  for (
    const [label, size] of [
      ["1 KiB", 1024],
      ["32 KiB", 32 * 1024],
      ["256 KiB", 256 * 1024],
    ] as const
  ) {
    const data = fill(size);
    const out = new Uint8Array(size + 16);
    const group = `aes-128-gcm seal ${label}`;
    Deno.bench({
      name: "Web Crypto, 1 in flight (the library, 8 KiB and up)",
      group,
      baseline: true,
      fn: async () => {
        await web(data);
      },
    });
    Deno.bench({
      name: "Web Crypto, 8 calls in flight (time is for all 8)",
      group,
      fn: async () => {
        const all = [];
        for (let i = 0; i < 8; i++) all.push(web(data));
        await Promise.all(all);
      },
    });
    Deno.bench({
      name: "libcrypto through FFI (reference, not used)",
      group,
      fn: () => seal(data, out),
    });
  }
  globalThis.addEventListener("unload", () => {
    s.EVP_CIPHER_CTX_free(ctx);
    lib.close();
  });
}
