// Entry of the training thread (models/training.ts): registers tsx so the
// TypeScript trainer loads, then answers { id, spec, rows } jobs.
import { register } from 'tsx/esm/api';
register();
await import('./training-thread-impl.ts');
