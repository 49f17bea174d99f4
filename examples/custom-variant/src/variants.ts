// The variants this project adds, in one module: scripts import it, and the `clove` command takes it with
// `--variants build/variants.js` (e.g. `npx clove eval --checkpoint runs/convnext --variants build/variants.js`).
import * as E from 'fp-ts/lib/Either.js';
import { withVariants, type Variants } from 'clove-ts/clove';
import { convNextEncoder } from './convnext.js';

const registered = withVariants({ encoders: { convnext: convNextEncoder() } });
if (E.isLeft(registered)) throw new Error(registered.left);
export const variants: Variants = registered.right;
