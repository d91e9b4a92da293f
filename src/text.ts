// Small wording helpers shared by messages and tables.

/** "1 volume", "2 volumes". */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
