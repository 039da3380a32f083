// Shared by the tests: hex, and where the conformance vectors are.
import { resolve } from "node:path";

/** tests/vectors/ of the repository (npm test runs in bindings/typescript). */
export const VECTORS_DIR = process.env.ROOMWIRE_VECTORS ?? resolve(process.cwd(), "../../tests/vectors");

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, "hex"));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
