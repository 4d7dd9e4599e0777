/**
 * The demo's group chat (`?size=N`; `?size=2` is a pair through the same code): joins a group of N
 * with the page's code, opens a data channel to each other member (`openMesh`), and sends each line
 * to all of them. `#members` lists each member (`member 1: open`, `member 0: you`), a message shows
 * as `member I: text`, and a member that leaves as `member I left`.
 */
import { openMesh, type LeaveReason, type Mesh, type MeshMember } from '../browser/index.js';
import { $, chat, input, loopbackFilter, onLine, say, setStatus, showFailure, status, step } from './page.js';

const LEFT: Readonly<Record<LeaveReason, string>> = { peer_left: 'left', closed: 'left', failed: 'could not be reached' };

/** The members, this page's place marked `you`, each with its state. */
function showMembers(mesh: Mesh): void {
  const list = $('members');
  const items = [...mesh.members.values(), { index: mesh.self, address: '', state: 'you' as const }]
    .sort((a, b) => a.index - b.index)
    .map((member) => {
      const item = document.createElement('li');
      item.textContent = `member ${member.index}: ${member.state}`;
      if (member.address !== '') item.title = member.address;
      return item;
    });
  list.replaceChildren(...items);
  list.hidden = false;
}

/** From the moment the group forms: the members as they connect or leave, and what they say. */
function listen(mesh: Mesh): void {
  setStatus('connecting');
  step(`matched: this page is member ${mesh.self} of ${mesh.size} (of each two members, the lower index makes the offer)`);
  showMembers(mesh);
  const stillHere = (member: MeshMember): boolean => member.state === 'open';
  mesh.on('open', () => showMembers(mesh));
  mesh.on('message', (member, data) => say(`member ${member.index}: ${typeof data === 'string' ? data : '(binary)'}`, 'peer'));
  mesh.on('leave', (member, reason) => {
    showMembers(mesh);
    say(`member ${member.index} ${LEFT[reason]}`, 'note');
    if (status.textContent === 'open' && ![...mesh.members.values()].some(stillHere)) {
      setStatus('everyone left');
      chat.hidden = true;
    }
  });
}

export async function runMesh(room: string, size: number, key: string | undefined, loopbackOnly: boolean): Promise<void> {
  setStatus('waiting');
  step(`waiting for a group of ${size} with code ${room}`);
  let mesh: Mesh;
  try {
    // No deadline: the page waits until the group forms or it is closed.
    mesh = await openMesh(location.origin, {
      code: room,
      size,
      timeoutMs: Infinity,
      ...(key === undefined ? {} : { key }),
      ...(loopbackOnly ? { filterCandidate: loopbackFilter } : {}),
      onMatched: listen,
      onStep: (member, text) => step(`member ${member}: ${text}`),
    });
  } catch (error) {
    showFailure(error);
    return;
  }
  (window as Window & { pairupDemo?: { readonly mesh: Mesh } }).pairupDemo = { mesh };
  const open = [...mesh.members.values()].filter((member) => member.state === 'open').length;
  setStatus('open');
  chat.hidden = false;
  input.focus();
  say(`channels open: messages now go straight to the ${open} other member${open === 1 ? '' : 's'}`, 'note');
  onLine((text) => mesh.sendAll(text) > 0);
  addEventListener('pagehide', () => mesh.close());
}
