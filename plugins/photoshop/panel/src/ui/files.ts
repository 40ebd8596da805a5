// File pickers for 'Add model...' and 'Daemon...': UXP's own picker, which also grants access.

import { storage } from "uxp";

/** The native path of a file the user picks, or "" when they cancel. */
export async function chooseFile(title: string, types?: string[]): Promise<string> {
  // @adobe/cc-ext-uxp-types declares the provider's class but not the storage.localFileSystem instance.
  const fs = (storage as unknown as { localFileSystem: storage.FileSystemProvider }).localFileSystem;
  const file = await fs.getFileForOpening(types ? { types } : {});
  return file && typeof file.nativePath === "string" ? file.nativePath : "";
}
