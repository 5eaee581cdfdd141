// The flags of `npm run chaos --` (test/chaos/main.ts parses them; test/unit/docs.test.ts checks the docs' commands
// against them).
export const CHAOS_FLAGS = { values: ['--minutes', '--seed', '--clients'], switches: [] as string[] };
