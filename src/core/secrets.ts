import { randomFillSync } from 'node:crypto';

const SECRET_BYTES = 32;
// Match secrets are cut from a block of random bytes refilled 128 secrets at a time (as Node does for
// randomUUID): one call into the CSPRNG per 128 matches instead of one per match. Bytes handed out
// are zeroed in the block.
const randomBlock = Buffer.alloc(SECRET_BYTES * 128);
let randomOffset = randomBlock.length;

/** 32 fresh random bytes, base64url: the secret two partners share. */
export function newSecret(): string {
  if (randomOffset === randomBlock.length) {
    randomFillSync(randomBlock);
    randomOffset = 0;
  }
  const end = randomOffset + SECRET_BYTES;
  const secret = randomBlock.toString('base64url', randomOffset, end);
  randomBlock.fill(0, randomOffset, end);
  randomOffset = end;
  return secret;
}
