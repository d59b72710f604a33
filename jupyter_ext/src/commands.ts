/**
 * The extension's commands, in the palette under "AI Overlays":
 * `overlay-sdk:open-dashboard` inserts a `Dashboard(...)` cell below the active one of the
 * current notebook (runs nothing), `overlay-sdk:rollback` asks which overlay and which
 * revision then rolls back, `overlay-sdk:refresh` reloads the sidebar, and
 * `overlay-sdk:show-sidebar` opens it. index.ts calls `addCommands`.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

import { errorMessage, OverlayApiError } from './api';
import {
  CATEGORY,
  dashboardCode,
  describeRevision,
  earlierRevisions,
  MISSING_EXTENSION,
  rollbackSummary
} from './format';
import { overlaysIcon } from './icons';
import { OverlaySidebar } from './sidebar';

export namespace CommandIDs {
  export const openDashboard = 'overlay-sdk:open-dashboard';
  export const rollback = 'overlay-sdk:rollback';
  export const refresh = 'overlay-sdk:refresh';
  export const showSidebar = 'overlay-sdk:show-sidebar';
}

export interface ICommandContext {
  app: JupyterFrontEnd;
  sidebar: OverlaySidebar;
  palette: ICommandPalette | null;
  tracker: INotebookTracker | null;
}

/** Tell the user something went wrong (the missing-extension text when that is why). */
async function report(title: string, error: unknown): Promise<void> {
  const text =
    error instanceof OverlayApiError && error.extensionMissing
      ? MISSING_EXTENSION
      : errorMessage(error);
  await showDialog({ title, body: text, buttons: [Dialog.okButton()] });
}

/**
 * Which overlay a command is about: `given`, else the sidebar's selection, else the only
 * one, else ask. null: none exists or the user cancelled (already told).
 */
async function pickOverlay(
  ctx: ICommandContext,
  title: string,
  given: unknown,
  preferSelection: boolean
): Promise<string | null> {
  if (typeof given === 'string' && given) {
    return given;
  }
  const names = (await ctx.sidebar.client.overlays()).map(o => o.name).sort();
  if (names.length === 0) {
    await showDialog({
      title,
      body: 'No overlay exists yet: create one from a notebook with cp.overlays.create(...).',
      buttons: [Dialog.okButton()]
    });
    return null;
  }
  const selected = ctx.sidebar.selected;
  if (preferSelection && selected && names.includes(selected)) {
    return selected;
  }
  if (names.length === 1) {
    return names[0];
  }
  const answer = await InputDialog.getItem({
    title,
    label: 'Overlay',
    items: names,
    current: Math.max(0, selected ? names.indexOf(selected) : 0)
  });
  return answer.button.accept && answer.value ? answer.value : null;
}

export function addCommands(ctx: ICommandContext): void {
  const { app, sidebar, palette, tracker } = ctx;
  const { commands } = app;

  commands.addCommand(CommandIDs.openDashboard, {
    label: 'Open overlay dashboard',
    caption: 'Insert a cell showing an overlay’s Dashboard widget below the active cell',
    icon: overlaysIcon,
    execute: async args => {
      const panel = tracker?.currentWidget ?? null;
      if (!panel) {
        await showDialog({
          title: 'Open overlay dashboard',
          body:
            'Open a notebook first: this command inserts a cell with the overlay’s ' +
            'Dashboard below the active cell of the current notebook.',
          buttons: [Dialog.okButton()]
        });
        return;
      }
      let name: string | null;
      try {
        name = await pickOverlay(ctx, 'Open overlay dashboard', args.overlay, true);
      } catch (error) {
        await report('Open overlay dashboard', error);
        return;
      }
      if (!name) {
        return;
      }
      const notebook = panel.content;
      NotebookActions.insertBelow(notebook);
      NotebookActions.changeCellType(notebook, 'code');
      const cell = notebook.activeCell;
      if (cell) {
        cell.model.sharedModel.setSource(dashboardCode(name, sidebar.client.plane));
      }
      app.shell.activateById(panel.id);
    }
  });

  commands.addCommand(CommandIDs.rollback, {
    label: 'Roll back model...',
    caption: 'Roll an overlay back to an earlier revision (applied again as a new one)',
    execute: async args => {
      const title = 'Roll back model';
      try {
        const name = await pickOverlay(ctx, `${title}: which overlay?`, args.overlay, false);
        if (!name) {
          return;
        }
        let to: number | null;
        if (typeof args.to === 'number') {
          to = args.to;
        } else {
          const detail = await sidebar.client.overlay(name);
          const earlier = earlierRevisions(detail.history, detail.revision);
          if (earlier.length === 0) {
            await showDialog({
              title,
              body: `${name} has no earlier revision to roll back to (it is at revision ${detail.revision}).`,
              buttons: [Dialog.okButton()]
            });
            return;
          }
          const now = Date.now();
          const items = [
            'previous (the latest earlier revision that differs)',
            ...earlier.map(r => describeRevision(r, now))
          ];
          const answer = await InputDialog.getItem({
            title: `${title}: ${name} is at revision ${detail.revision}; roll back to`,
            label: 'Revision',
            items,
            current: 0,
            okLabel: 'Roll back'
          });
          if (!answer.button.accept || answer.value === null) {
            return;
          }
          const index = items.indexOf(answer.value);
          if (index < 0) {
            return;
          }
          to = index === 0 ? null : earlier[index - 1].revision;
        }
        const overlay = await sidebar.client.rollback(name, to);
        await showDialog({
          title,
          body: rollbackSummary(name, to, overlay),
          buttons: [Dialog.okButton()]
        });
        await sidebar.refresh();
      } catch (error) {
        await report(`${title} failed`, error);
        void sidebar.refresh();
      }
    }
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh AI overlays',
    caption: 'Reload the AI Overlays sidebar',
    execute: () => sidebar.refresh()
  });

  commands.addCommand(CommandIDs.showSidebar, {
    label: 'Show AI overlays',
    caption: 'Open the AI Overlays sidebar',
    execute: () => {
      app.shell.activateById(sidebar.id);
    }
  });

  if (palette) {
    for (const command of [
      CommandIDs.openDashboard,
      CommandIDs.rollback,
      CommandIDs.refresh,
      CommandIDs.showSidebar
    ]) {
      palette.addItem({ command, category: CATEGORY });
    }
  }
}
