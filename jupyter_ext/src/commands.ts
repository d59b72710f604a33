/**
 * The extension's commands, in the palette under "AI Overlays":
 * `overlay-sdk:open-dashboard` inserts a `Dashboard(...)` cell below the active one of the
 * current notebook (runs nothing); `overlay-sdk:rollback` ("Roll back model...") moves a
 * model's `serving` alias back (the overlays routing to `model@serving` follow);
 * `overlay-sdk:rollback-overlay` ("Roll back overlay...") re-applies an earlier revision of
 * an overlay; `overlay-sdk:refresh` reloads the sidebar, and `overlay-sdk:show-sidebar`
 * opens it. index.ts calls `addCommands`.
 *
 * Arguments (for other extensions and tests): `open-dashboard` {overlay};
 * `rollback` {model, alias, to} (`to`: 'previous', a version, a label or a time; given, no
 * choice is asked, the confirmation still is); `rollback-overlay` {overlay, to, revision}.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

import { errorMessage, IModel, OverlayApiError } from './api';
import {
  CATEGORY,
  dashboardCode,
  describeRevision,
  earlierRevisions,
  MISSING_EXTENSION,
  rollbackSummary
} from './format';
import { overlaysIcon } from './icons';
import {
  describeTarget,
  IRollbackChoice,
  modelRollbackSummary,
  previousVersion,
  rollbackChoices,
  SERVING_ALIAS
} from './models';
import { OverlaySidebar } from './sidebar';
import { changeFailure, isConflict } from './stale';

export namespace CommandIDs {
  export const openDashboard = 'overlay-sdk:open-dashboard';
  /** "Roll back model...": moves `model@serving` back. */
  export const rollback = 'overlay-sdk:rollback';
  /** "Roll back overlay...": re-applies an earlier revision of an overlay. */
  export const rollbackOverlay = 'overlay-sdk:rollback-overlay';
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

/** Which model a command is about: `given`, else ask. null: none exists, or cancelled. */
async function pickModel(
  ctx: ICommandContext,
  title: string,
  given: unknown
): Promise<IModel | null> {
  const models = [...(await ctx.sidebar.client.models())].sort((a, b) =>
    a.name.localeCompare(b.name)
  );
  if (models.length === 0) {
    await showDialog({
      title,
      body: 'No model is registered yet: cp.models.register(...) adds one.',
      buttons: [Dialog.okButton()]
    });
    return null;
  }
  if (typeof given === 'string' && given) {
    const found = models.find(m => m.name === given);
    if (!found) {
      await showDialog({
        title,
        body: `No model "${given}": the registry has ${models.map(m => m.name).join(', ')}.`,
        buttons: [Dialog.okButton()]
      });
    }
    return found ?? null;
  }
  const names = models.map(m => m.name);
  const answer = await InputDialog.getItem({
    title,
    label: 'Model',
    items: names,
    current: 0,
    okLabel: 'Next'
  });
  if (!answer.button.accept || !answer.value) {
    return null;
  }
  return models.find(m => m.name === answer.value) ?? null;
}

export function addCommands(ctx: ICommandContext): void {
  const { app, sidebar, palette, tracker } = ctx;
  const { commands } = app;

  commands.addCommand(CommandIDs.openDashboard, {
    label: 'Open overlay dashboard',
    caption: 'Insert a cell showing an overlay’s Dashboard widget below the active cell',
    icon: overlaysIcon,
    execute: async args => {
      const title = 'Open overlay dashboard';
      const panel = tracker?.currentWidget ?? null;
      if (!panel) {
        await showDialog({
          title,
          body:
            'Open a notebook first: this command inserts a cell with the overlay’s ' +
            'Dashboard below the active cell of the current notebook.',
          buttons: [Dialog.okButton()]
        });
        return;
      }
      let name: string | null;
      let code: string;
      try {
        name = await pickOverlay(ctx, title, args.overlay, true);
        if (!name) {
          return;
        }
        // the kernel may not find the server's control plane by itself (another working
        // directory or $OVERLAY_HOME): write its address, and a cluster's registry
        const status = await sidebar.client.status();
        const address = sidebar.client.plane || status.controlPlane;
        code = dashboardCode(name, address, status.registryUri ?? '');
      } catch (error) {
        await report(title, error);
        return;
      }
      const notebook = panel.content;
      NotebookActions.insertBelow(notebook);
      NotebookActions.changeCellType(notebook, 'code');
      const cell = notebook.activeCell;
      if (cell) {
        cell.model.sharedModel.setSource(code);
      }
      app.shell.activateById(panel.id);
    }
  });

  commands.addCommand(CommandIDs.rollback, {
    label: 'Roll back model...',
    caption:
      'Move a model’s serving alias back (to its previous version or a chosen one); ' +
      'the overlays routing to model@serving follow',
    execute: async args => {
      const title = 'Roll back model';
      try {
        const model = await pickModel(ctx, `${title}: which model?`, args.model);
        if (!model) {
          return;
        }
        const alias = typeof args.alias === 'string' && args.alias ? args.alias : SERVING_ALIAS;
        const ref = `${model.name}@${alias}`;
        const aliases = await sidebar.client.modelAliases(model.name);
        const current = aliases.aliases[alias] ?? null;
        if (current === null) {
          await showDialog({
            title,
            body:
              `${ref} is not set, so there is nothing to roll back: point it at a version ` +
              `first, e.g. cp.models.set_alias("${model.name}", "${alias}", 1).`,
            buttons: [Dialog.okButton()]
          });
          return;
        }
        const previous = previousVersion(aliases.history, alias, current);
        let choice: IRollbackChoice;
        if (typeof args.to === 'string' || typeof args.to === 'number') {
          choice = { label: String(args.to), to: String(args.to) };
        } else {
          const choices = rollbackChoices(model.versions, current, previous);
          const labels = choices.map(c => c.label);
          const answer = await InputDialog.getItem({
            title: `${title}: ${ref} points at version ${current}; move it to`,
            label: 'Version',
            items: labels,
            current: 0,
            okLabel: 'Next'
          });
          if (!answer.button.accept || answer.value === null) {
            return;
          }
          const index = labels.indexOf(answer.value);
          if (index < 0) {
            return;
          }
          choice = choices[index];
        }
        // a label or a time (given as an argument) is the server's to resolve
        const target =
          choice.to === 'previous' || /^[0-9]+$/.test(choice.to)
            ? describeTarget(choice, previous)
            : `"${choice.to}"`;
        const confirmed = await showDialog({
          title,
          body:
            `Move ${ref} from version ${current} to ${target}? The overlays routing to ` +
            `${ref} follow at once (each gets a new revision).`,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Roll back' })]
        });
        if (!confirmed.button.accept) {
          return;
        }
        const result = await sidebar.client.rollbackModel(model.name, choice.to, { alias });
        Notification.success(modelRollbackSummary(result), { autoClose: 10000 });
        await sidebar.refresh();
      } catch (error) {
        await report(`${title} failed`, error);
        void sidebar.refresh();
      }
    }
  });

  commands.addCommand(CommandIDs.rollbackOverlay, {
    label: 'Roll back overlay...',
    caption: 'Roll an overlay back to an earlier revision (applied again as a new one)',
    execute: async args => {
      const title = 'Roll back overlay';
      try {
        const name = await pickOverlay(ctx, `${title}: which overlay?`, args.overlay, false);
        if (!name) {
          return;
        }
        let to: number | null;
        // the revision the user decided on: the one the dialog showed, else the caller's,
        // else the sidebar's; the server refuses the rollback if the overlay moved on
        let revision: number | null;
        if (typeof args.to === 'number' || args.to === null) {
          to = args.to;
          revision =
            typeof args.revision === 'number' ? args.revision : sidebar.shownRevision(name);
        } else {
          const detail = await sidebar.client.overlay(name);
          revision = detail.revision;
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
        let overlay;
        try {
          overlay = await sidebar.client.rollback(name, to, { revision });
        } catch (error) {
          if (!isConflict(error)) {
            throw error;
          }
          await sidebar.refresh();
          await showDialog({
            title,
            body: changeFailure('Rollback', error),
            buttons: [Dialog.okButton()]
          });
          return;
        }
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
      CommandIDs.rollbackOverlay,
      CommandIDs.refresh,
      CommandIDs.showSidebar
    ]) {
      palette.addItem({ command, category: CATEGORY });
    }
  }
}
