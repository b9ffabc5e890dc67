/** `npm start`: the CLI, running the demo when given no arguments (bare `loopline` prints the help instead). */
import { main } from './main.js';

void main(process.argv.length > 2 ? process.argv : [...process.argv, 'demo']);
