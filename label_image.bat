@echo off
rem label_image.bat: runs `python -m label_image` with every argument passed through unchanged.
rem Works from a clone (this folder is put on PYTHONPATH) or with the package pip-installed.
rem
rem Usage:
rem   label_image.bat --graph output_graph.pb --labels output_labels.txt --image photo.jpg
rem or drop an image file onto label_image.bat (the image is the first argument).
rem
rem Python: the active virtual environment's `python` if one is active, else the `py -3`
rem launcher, else `python` on PATH. Double-clicked (or a file dropped on it), the window
rem stays open at the end; set LABEL_IMAGE_NO_PAUSE=1 to never pause (e.g. from PowerShell).
setlocal
set "PYTHONPATH=%~dp0;%PYTHONPATH%"
set "LABEL_IMAGE_PYTHON="
if defined VIRTUAL_ENV set "LABEL_IMAGE_PYTHON=python"
if not defined LABEL_IMAGE_PYTHON (
    where py >nul 2>nul && set "LABEL_IMAGE_PYTHON=py -3"
)
if not defined LABEL_IMAGE_PYTHON (
    where python >nul 2>nul && set "LABEL_IMAGE_PYTHON=python"
)
if not defined LABEL_IMAGE_PYTHON (
    echo label_image: error: Python 3 not found: install it from python.org with the py launcher 1>&2
    set "LABEL_IMAGE_EXIT=9009"
    goto done
)
%LABEL_IMAGE_PYTHON% -m label_image %*
set "LABEL_IMAGE_EXIT=%ERRORLEVEL%"

:done
rem Explorer starts a double-clicked script as: cmd /c ""<full path of this file>" ...". An
rem interactive prompt's command line (cmdcmdline) holds neither /c nor this path: no pause.
if defined LABEL_IMAGE_NO_PAUSE goto finish
setlocal EnableDelayedExpansion
set "LAUNCHED_BY=!cmdcmdline!"
if /i not "!LAUNCHED_BY:%~f0=!"=="!LAUNCHED_BY!" if /i not "!LAUNCHED_BY:/c =!"=="!LAUNCHED_BY!" pause
endlocal

:finish
endlocal & exit /b %LABEL_IMAGE_EXIT%
