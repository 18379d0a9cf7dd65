// Compile-time check that the implementation has the shape api.d.ts (the
// shipped parley.d.ts) promises. scripts/gen-web type-checks it; it is
// never bundled.
import type * as Api from "./api";
import * as Impl from "./parley";

export const shape: typeof Api = Impl;
