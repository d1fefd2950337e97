#!/usr/bin/env node
// Launcher for the `lockstep` command: registers tsx (Lockstep runs its TypeScript sources
// directly) and hands over to the CLI.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/main.ts', import.meta.url).href);
