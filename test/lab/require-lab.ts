// Set-up file of the e2e project: no e2e test runs outside its lab (see lab.ts).
import { assertInLab } from './lab';

assertInLab();
