// Writes datasets/intent-routing/{train,validation}.jsonl: short assistant requests, each routed to one of six
// intents (the answer is one label word). Deterministic: templates × slot fillers drawn with a fixed seed, so
// re-running the script reproduces the files byte for byte (a test checks that).
//
// The validation split is held out: no validation request appears in the training file, and some slot fillers
// (cities, artists, items, people, ...) occur only in validation, so the model must route on the words that carry
// the intent, not on memorised lines.
//
//   npx tsx scripts/make-intent-data.ts [--check]    (--check: exit 1 if the files on disk differ)
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../src/util/rng.ts';

export const INTENTS = ['weather', 'music', 'timer', 'lights', 'shopping', 'calendar'] as const;
export type Intent = (typeof INTENTS)[number];

const SEED = 17;
const TRAIN_PER_INTENT = 40;
const VAL_PER_INTENT = 10;

// Slot fillers: [used in training and validation, used only in validation].
const FILL: Record<string, [string[], string[]]> = {
  city: [['Paris', 'Berlin', 'Tokyo', 'Madrid', 'Chicago', 'Cairo', 'Oslo', 'Lima', 'Dublin', 'Seoul'], ['Vienna', 'Nairobi', 'Denver']],
  when: [['today', 'tomorrow', 'tonight', 'this weekend', 'on Monday', 'on Friday', 'this afternoon', 'next week'], ['on Sunday', 'this evening']],
  genre: [['jazz', 'rock', 'classical music', 'hip hop', 'pop', 'blues', 'reggae', 'folk'], ['disco', 'country']],
  artist: [['Miles Davis', 'Taylor Swift', 'the Beatles', 'Adele', 'Queen', 'Bob Marley', 'Drake', 'Mozart'], ['Nina Simone', 'Coldplay']],
  room: [['kitchen', 'bedroom', 'living room', 'hallway', 'bathroom', 'office', 'garage', 'porch'], ['dining room', 'attic']],
  n: [['2', '5', '10', '15', '20', '25', '30', '45'], ['3', '12']],
  food: [['pasta', 'eggs', 'rice', 'pizza', 'cookies', 'tea', 'bread', 'potatoes'], ['noodles', 'soup']],
  color: [['red', 'blue', 'green', 'warm white', 'purple', 'orange'], ['yellow', 'pink']],
  item: [['milk', 'eggs', 'bread', 'coffee', 'apples', 'butter', 'cheese', 'bananas', 'rice', 'soap'], ['olive oil', 'yogurt', 'tomatoes']],
  person: [['Anna', 'David', 'my boss', 'the dentist', 'Maria', 'Tom', 'the team', 'Priya'], ['Lucas', 'my sister']],
  event: [['meeting', 'dentist appointment', 'lunch', 'call', 'interview', 'yoga class'], ['haircut', 'review']],
};

const TEMPLATES: Record<Intent, string[]> = {
  weather: [
    "what's the weather in {city} {when}", 'will it rain in {city} {when}', 'is it going to be cold {when}',
    'do I need an umbrella {when}', 'how hot will it get in {city} {when}', 'weather forecast for {city}',
    'is it snowing in {city}', 'will it be sunny {when}', 'how windy is it in {city}', 'tell me the forecast for {when}',
  ],
  music: [
    'play some {genre}', 'put on {artist}', 'play the new album by {artist}', 'skip this song', 'turn the music up',
    'I want to hear {genre}', 'play {genre} in the {room}', 'shuffle my {genre} playlist', 'play something by {artist}',
    'pause the music',
  ],
  timer: [
    'set a timer for {n} minutes', 'start a {n} minute timer for the {food}', 'how much time is left on my timer',
    'cancel the timer', 'timer for {n} minutes please', 'set a {n} minute timer', 'add {n} minutes to the timer',
    'stop the {food} timer', 'count down {n} minutes', 'start a timer for the {food}',
  ],
  lights: [
    'turn off the lights in the {room}', 'dim the {room} lights', 'switch on the {room} lamp', 'make the lights brighter',
    'turn the {room} lights {color}', 'lights on in the {room}', 'set the {room} lights to {color}',
    'switch off every light', 'turn on the {room} light', 'make the {room} lamp dimmer',
  ],
  shopping: [
    'add {item} to my shopping list', 'we are out of {item}', 'put {item} on the list', 'remind me to buy {item}',
    'remove {item} from the shopping list', "what's on my shopping list", 'add {item} and {item} to the list',
    'I need to buy {item}', 'cross {item} off the list', 'put {item} on the shopping list',
  ],
  calendar: [
    "what's on my calendar {when}", 'schedule a meeting with {person} {when}', 'move my {event} to {when}',
    'am I free {when}', 'cancel my {event} {when}', 'add a {event} with {person} to my calendar',
    'when is my next {event}', 'book a {event} with {person} {when}', 'what time is my {event} {when}',
    'put a {event} on my calendar {when}',
  ],
};

const QUESTION_WORDS = ['what', 'how', 'will', 'is', 'do', 'am', 'when'];

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[Math.floor(rng.next() * xs.length)];
}

/** Fill every {slot}; `heldOut`: draw from the shared fillers plus the validation-only ones. */
function fill(rng: Rng, template: string, heldOut: boolean): string {
  return template.replace(/\{(\w+)\}/g, (_, slot: string) => {
    const [shared, only] = FILL[slot];
    return pick(rng, heldOut ? [...shared, ...only] : shared);
  });
}

export interface IntentExample { text: string; intent: Intent }

/** Both splits, in file order. Validation requests never occur in train; each split has no duplicate request. */
export function makeIntentData(): { train: IntentExample[]; validation: IntentExample[] } {
  const rng = new Rng(SEED);
  const seen = new Set<string>();
  const draw = (intent: Intent, count: number, heldOut: boolean): IntentExample[] => {
    const out: IntentExample[] = [];
    for (let tries = 0; out.length < count; tries++) {
      if (tries > 10_000) throw new Error(`cannot draw ${count} distinct ${intent} requests`);
      const raw = fill(rng, pick(rng, TEMPLATES[intent]), heldOut);
      const question = QUESTION_WORDS.includes(raw.split(/[\s']/)[0]);
      const text = raw.charAt(0).toUpperCase() + raw.slice(1) + (question ? '?' : '');
      const key = text.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ text, intent });
    }
    return out;
  };
  const train: IntentExample[] = [];
  const validation: IntentExample[] = [];
  for (const intent of INTENTS) train.push(...draw(intent, TRAIN_PER_INTENT, false));
  for (const intent of INTENTS) validation.push(...draw(intent, VAL_PER_INTENT, true));
  // Interleave the intents so a file read top to bottom (or cut with --max-examples) covers all of them.
  const shuffle = (xs: IntentExample[]) => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  };
  return { train: shuffle(train), validation: shuffle(validation) };
}

export function toJsonl(xs: IntentExample[]): string {
  return xs.map((x) => JSON.stringify({ messages: [{ role: 'user', content: x.text }, { role: 'assistant', content: x.intent }] })).join('\n') + '\n';
}

export const INTENT_DIR = path.resolve(import.meta.dirname, '../datasets/intent-routing');

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const { train, validation } = makeIntentData();
  const files = { 'train.jsonl': toJsonl(train), 'validation.jsonl': toJsonl(validation) };
  if (process.argv.includes('--check')) {
    const stale = Object.entries(files).filter(([f, text]) => !fs.existsSync(path.join(INTENT_DIR, f)) || fs.readFileSync(path.join(INTENT_DIR, f), 'utf8') !== text);
    for (const [f] of stale) console.error(`${path.join(INTENT_DIR, f)}: differs from what scripts/make-intent-data.ts writes`);
    process.exit(stale.length ? 1 : 0);
  }
  fs.mkdirSync(INTENT_DIR, { recursive: true });
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(INTENT_DIR, f), text);
  console.log(`${INTENT_DIR}: ${train.length} train, ${validation.length} validation examples`);
}
