import { isUtf8 } from 'node:buffer';
import { DatasetError } from './dataset-error.ts';

/** Length of the incomplete UTF-8 sequence at the end of `buf` (0–3), carried to the next chunk. */
function incompleteTail(buf: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back] as number;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/** The offset of the first byte of `buf` that starts an invalid sequence (a slow scan, for the error message). */
function firstInvalid(buf: Uint8Array): number {
  for (let i = 0; i < buf.length; i++) {
    for (let len = 1; len <= 4 && i + len <= buf.length; len++) {
      if (isUtf8(buf.subarray(i, i + len))) {
        i += len - 1;
        break;
      }
      if (len === 4 || i + len === buf.length) return i;
    }
  }
  return buf.length;
}

/**
 * Checks a byte stream is UTF-8, chunk by chunk, with sequences split across chunks carried over.
 * Throws a {@link DatasetError} naming the absolute byte offset of the first bad byte.
 */
export class Utf8Validator {
  private carry: Uint8Array = new Uint8Array(0);

  constructor(private offset: number) {}

  check(chunk: Uint8Array): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const tail = incompleteTail(buf);
    const body = buf.subarray(0, buf.length - tail);
    if (!isUtf8(body)) this.fail(this.offset + firstInvalid(body));
    this.offset += body.length;
    this.carry = buf.slice(buf.length - tail);
  }

  end(): void {
    if (this.carry.length > 0) this.fail(this.offset);
  }

  private fail(at: number): never {
    throw new DatasetError(
      `the dataset is not valid UTF-8 (first invalid byte at offset ${at}); re-encode it as UTF-8 or give "encoding": "latin1"`,
    );
  }
}
