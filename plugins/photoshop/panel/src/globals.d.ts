// Globals UXP provides at run time that @adobe/cc-ext-uxp-types does not declare (the panel is
// compiled without TypeScript's DOM library, whose declarations clash with UXP's own).
declare const console: {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
declare function setTimeout(fn: () => void, ms?: number): number;
declare function clearTimeout(id: number | undefined): void;
declare function btoa(data: string): string;
